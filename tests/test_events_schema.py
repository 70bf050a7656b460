"""The typed events write the schema-v1 JSON of docs/events.md, key for key, and reading
events.jsonl back accepts only valid events: hostile or foreign lines are skipped, never fatal."""

from __future__ import annotations

import json
import pickle

import pytest
from msgspec import UNSET

from virnucpro_tui.pool.events import (
    EVENT_TYPES,
    TELEMETRY_TYPES,
    ErrorEvent,
    Heartbeat,
    JobDone,
    JobPrepared,
    ModelLoad,
    ModelPhase,
    RunDone,
    RunStarted,
    RunStatus,
    ShardDone,
    SlotInfo,
    WorkerState,
    WorkerStateChanged,
    decode_event,
    encode_event,
    make_event,
    parse_event,
)

BASE = {"v": 1, "ts": 12.5}


def as_json(event: object) -> dict[str, object]:
    return json.loads(encode_event(event))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (  # a worker's state change carries pid and generation; the supervisor's do not
            WorkerStateChanged(ts=12.5, worker=0, state=WorkerState.BUSY, device="CPU worker 0",
                               pid=7, generation=0, shard=3, frames=24),
            {"type": "worker_state", "worker": 0, "job": None, "state": "busy",
             "device": "CPU worker 0", "pid": 7, "generation": 0, "shard": 3, "frames": 24},
        ),
        (
            WorkerStateChanged(ts=12.5, worker=1, state=WorkerState.STOPPED, device="GPU 1 (H200)"),
            {"type": "worker_state", "worker": 1, "job": None, "state": "stopped",
             "device": "GPU 1 (H200)"},
        ),
        (  # a CPU worker's starting event names its (absent) GPU: uuid null, not missing
            WorkerStateChanged(ts=12.5, worker=0, state=WorkerState.STARTING, device="CPU worker 0",
                               pid=7, generation=0, uuid=None),
            {"type": "worker_state", "worker": 0, "job": None, "state": "starting",
             "device": "CPU worker 0", "pid": 7, "generation": 0, "uuid": None},
        ),
        (
            Heartbeat(ts=12.5, worker=2, state=WorkerState.IDLE, shard=None, since_progress=1.5,
                      pid=9),
            {"type": "heartbeat", "worker": 2, "job": None, "state": "idle", "shard": None,
             "since_progress": 1.5, "pid": 9},
        ),
        (
            ModelLoad(ts=12.5, worker=0, job="a", model="esm", phase=ModelPhase.DONE, source="/m",
                      shard=0, dtype="float32", seconds=1.25, bytes_on_device=10,
                      compile_seconds=None, fast_path=False, demo=True),
            {"type": "model_load", "worker": 0, "job": "a", "model": "esm", "phase": "done",
             "source": "/m", "shard": 0, "dtype": "float32", "seconds": 1.25,
             "bytes_on_device": 10, "compile_seconds": None, "fast_path": False, "demo": True},
        ),
        (
            ErrorEvent(ts=12.5, fatal=True, message="disk on fire"),
            {"type": "error", "worker": None, "job": None, "message": "disk on fire",
             "fatal": True},
        ),
        (
            JobPrepared(ts=12.5, job="a", chunks_prepared=3, chunks_total=9, frames_prepared=7,
                        done=False, shards_total=None),
            {"type": "job_prepared", "worker": None, "job": "a", "chunks_prepared": 3,
             "chunks_total": 9, "frames_prepared": 7, "done": False, "shards_total": None,
             "duplicate_frames": 0},
        ),
        (  # identical frames computed once: how many of the prepared frames copy a result
            JobPrepared(ts=12.5, job="a", chunks_prepared=9, chunks_total=9, frames_prepared=20,
                        done=True, shards_total=2, duplicate_frames=6),
            {"type": "job_prepared", "worker": None, "job": "a", "chunks_prepared": 9,
             "chunks_total": 9, "frames_prepared": 20, "done": True, "shards_total": 2,
             "duplicate_frames": 6},
        ),
        (
            ShardDone(ts=12.5, worker=0, job="a", shard=1, frames=2, seconds=0.5, tokens=9,
                      virus_frames=1, others_frames=1, histogram=(1, 1), top=(("f1", 0.75),)),
            {"type": "shard_done", "worker": 0, "job": "a", "shard": 1, "frames": 2,
             "seconds": 0.5, "tokens": 9, "virus_frames": 1, "others_frames": 1,
             "histogram": [1, 1], "top": [["f1", 0.75]]},
        ),
        (
            RunDone(ts=12.5, status=RunStatus.COMPLETE, exit_code=0, seconds=3.0, frames=5,
                    resumable=False, jobs={"a": "done"}),  # type: ignore[dict-item]
            {"type": "run_done", "worker": None, "job": None, "status": "complete",
             "exit_code": 0, "seconds": 3.0, "frames": 5, "resumable": False,
             "jobs": {"a": "done"}},
        ),
    ],
)  # fmt: skip
def test_events_write_the_documented_json(event: object, expected: dict[str, object]) -> None:
    assert as_json(event) == {**BASE, **expected}
    assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(event)) == event


def test_fields_added_in_v1_default_when_an_older_run_did_not_write_them() -> None:
    """events.jsonl of a run from before deduplication and saved features still reads."""
    old_prepared = {
        "type": "job_prepared",
        "v": 1,
        "ts": 1.0,
        "job": "a",
        "chunks_prepared": 1,
        "chunks_total": 1,
        "frames_prepared": 4,
        "done": True,
        "shards_total": 1,
    }
    old_done = {"type": "job_done", "v": 1, "ts": 2.0, "job": "a", "out_dir": "/r",
                "outputs": {}, "sequences": 1, "viral_sequences": 0, "chunks": 1,
                "chunks_with_frames": 1, "chunks_without_frames": 0, "frames": 4,
                "virus_frames": 0, "viral_chunks": 0, "top_sequences": [], "skipped_shards": 0,
                "seconds": 1.0, "demo": True}  # fmt: skip
    prepared = decode_event(json.dumps(old_prepared))
    done = decode_event(json.dumps(old_done))
    assert isinstance(prepared, JobPrepared) and prepared.duplicate_frames == 0
    assert isinstance(done, JobDone)
    assert (done.duplicate_frames, done.features_path, done.features_bytes) == (0, None, None)


def test_job_done_names_the_saved_features_and_their_size() -> None:
    event = JobDone(ts=2.0, job="a", out_dir="/r", outputs={"prediction_features.pt": "/r/f.pt"},
                    sequences=1, viral_sequences=0, chunks=1, chunks_with_frames=1,
                    chunks_without_frames=0, frames=4, virus_frames=0, viral_chunks=0,
                    top_sequences=(), skipped_shards=0, seconds=1.0, demo=True,
                    duplicate_frames=1, features_path="/r/f.pt", features_bytes=2048)  # fmt: skip
    data = as_json(event)
    assert (data["duplicate_frames"], data["features_path"], data["features_bytes"]) == (
        1,
        "/r/f.pt",
        2048,
    )
    assert decode_event(encode_event(event)) == event


def test_run_started_lists_its_workers() -> None:
    event = RunStarted(ts=1.0, out="/r", workers=(SlotInfo(0, "cuda", 2, "GPU-x", "H200"),))
    assert as_json(event)["workers"] == [
        {"worker": 0, "kind": "cuda", "index": 2, "uuid": "GPU-x", "name": "H200"}
    ]


def test_every_type_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "events.md").read_text()
    missing = [t for t in EVENT_TYPES if f"`{t}`" not in doc]
    assert not missing
    assert {"heartbeat", "gpu_memory", "gpu_telemetry", "progress"} == TELEMETRY_TYPES


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"heartbeat"',
        b'{"type": "no_such_type", "v": 1}',
        b'{"v": 1, "ts": 1}',
        b'{"type": "heartbeat", "state": "dancing", "shard": null, "since_progress": 1, "pid": 1}',
        b'{"type": "shard_done", "shard": "0", "frames": 1}',
        b'{"type": "worker_state", "state": "busy", "device": 3}',
        b'{"type": "run_done", "status": "complete", "exit_code": 0, "seconds": 1, '
        b'"frames": 1e400, "resumable": false, "jobs": {}}',
        b'{"type": "warning", "message": {"nested": ["x"]}}',
        b'{"type": "heartbeat", "worker": true, "state": "busy", "shard": null, '
        b'"since_progress": 1, "pid": 1}',
    ],
)
def test_hostile_or_foreign_lines_are_rejected(line: bytes) -> None:
    assert decode_event(line) is None
    try:
        obj = json.loads(line)
    except ValueError:
        return
    assert parse_event(obj) is None


def test_unknown_fields_are_ignored_known_ones_checked() -> None:
    line = b'{"type":"warning","v":1,"ts":2,"worker":null,"job":"a","message":"m","future":[1]}'
    event = decode_event(line)
    assert event is not None and event.type == "warning" and event.job == "a"
    assert "future" not in as_json(event)


def test_make_event_checks_what_the_engine_reports() -> None:
    event = make_event(
        "oom", worker=1, job="a", shard=4, model="esm", batch_size=8, action="split", bytes_freed=0
    )
    assert as_json(event)["batch_size"] == 8 and event.worker == 1
    with pytest.raises(ValueError, match="oom"):
        make_event("oom", worker=1, model="esm")  # batch_size missing
    with pytest.raises(ValueError):
        make_event("no_such_type")


def test_events_pickle_without_finding_unset_by_a_module_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pickle looks up an object without ``__module__`` (msgspec's UNSET) by scanning
    sys.modules, which can miss it while another thread imports: a Ray actor under load failed
    with "Can't pickle UNSET". With nothing to scan, events with UNSET fields still pickle."""
    import sys

    event = WorkerStateChanged(worker=0, state=WorkerState.IDLE, device="cpu")  # pid: UNSET
    monkeypatch.setattr(sys, "modules", {})  # what the scan sees; imports still work
    try:
        data = pickle.dumps(event)
    finally:
        monkeypatch.undo()
    assert pickle.loads(data) == event and pickle.loads(data).pid is UNSET
