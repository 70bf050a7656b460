"""RunView folding and the wording of run/describe.py, as pure functions (no app, no process):
what the headless lines, attach and the dashboard's log say about each event."""

from __future__ import annotations

from tests.ui.helpers import ev
from virnucpro_tui.pool.events import RunStatus, WorkerState
from virnucpro_tui.run.describe import (
    event_line,
    fmt_bytes,
    fmt_duration,
    log_description,
    notable_text,
    progress_line,
    summary_lines,
)
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import scenario

T = 1_000.0


def fold(*events: object) -> RunView:
    view = RunView()
    for e in events:
        view.apply(e)  # type: ignore[arg-type]
    return view


def test_formats() -> None:
    assert (fmt_duration(None), fmt_duration(59.6), fmt_duration(3_725)) == (
        "--:--",
        "01:00",
        "1:02:05",
    )
    assert (fmt_bytes(None), fmt_bytes(512), fmt_bytes(3 * 2**30)) == ("-", "512 B", "3.0 GiB")


def test_worker_events_name_the_worker_in_plain_lines_only() -> None:
    load = ev(
        "model_load",
        T,
        0,
        "a",
        model="esm",
        phase="done",
        source="/m",
        seconds=38.4,
        bytes_on_device=5 * 2**30,
        dtype="bfloat16",
    )
    assert notable_text(load) == "esm loaded in 38.4 s (5.0 GiB, bfloat16)"
    assert event_line(load) == "worker 0: esm loaded in 38.4 s (5.0 GiB, bfloat16)"
    assert log_description(load) == "esm loaded in 38.4 s (5.0 GiB, bfloat16)"
    crash = ev("worker_state", T, 1, state="crashed", reason="exited with signal SIGKILL")
    assert event_line(crash) == "worker 1: crashed: exited with signal SIGKILL"
    requeued = ev("shard_requeued", T, None, "a", shard=3, attempt=1, reason="worker 1 died")
    assert event_line(requeued) == "shard a/3 requeued (attempt 1): worker 1 died"


def test_quiet_events_are_described_in_the_log_only() -> None:
    busy = ev("worker_state", T, 0, "a", state="busy", shard=7, frames=2048)
    assert event_line(busy) is None
    assert log_description(busy) == "busy on a #7 (2,048 frames)"
    start = ev("worker_state", T, 0, state="starting", pid=42)
    assert log_description(start) == "starting (pid 42)"
    cleared = ev(
        "cache_cleared",
        T,
        0,
        reason="periodic",
        bytes_freed=2**30,
        reserved_before=3 * 2**30,
        reserved_after=2 * 2**30,
    )
    assert event_line(cleared) is None  # only a manual clear is a line of its own
    assert log_description(cleared) == (
        "cache cleared (periodic): 1.0 GiB freed, reserved 3.0 GiB -> 2.0 GiB"
    )
    done = ev("run_done", T, status="interrupted", exit_code=130, seconds=75.0)
    assert log_description(done) == "run interrupted (exit 130) after 01:15"


def test_the_run_start_is_two_lines_or_one_log_entry() -> None:
    start = ev("run_started", T, out="/r", devices=["cpu"], demo=True, notice="random weights")
    assert event_line(start) == "virnucpro-tui run -> /r on cpu\nDEMO: random weights"
    assert log_description(start) == "virnucpro-tui run -> /r on cpu · DEMO: random weights"


def test_fatal_run_errors_are_left_to_the_last_line() -> None:
    assert event_line(ev("error", T, message="No space left", fatal=False, disk_full=True)) is None
    assert event_line(ev("error", T, message="cannot go on", fatal=True)) is None
    assert event_line(ev("error", T, 2, message="bad shard", fatal=False)) == (
        "worker 2: error: bad shard"
    )


def test_the_view_folds_a_restart() -> None:
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"]),
        ev("model_load", T + 1, 0, model="esm", phase="done", source="/m", seconds=1.0),
        ev("worker_state", T + 2, 0, state="busy", pid=5, shard=0, frames=8, job="a"),
        ev("progress", T + 3, 0, "a", shard=0, stage="dnabert", frames_done=4, frames_total=8),
        ev("worker_state", T + 4, 0, state="crashed", reason="exited with code 9"),
        ev("worker_state", T + 5, 0, state="restarting", generation=1, reason="exited"),
    )
    w = view.workers[0]
    assert w.state == WorkerState.RESTARTING and w.restarts == 1 and w.generation == 1
    assert w.pid == 5 and w.last_error == "restarting: exited"
    assert w.models["esm"].state == "not loaded" and w.shard is None
    assert view.frames_in_flight == 0 and view.status == RunStatus.RUNNING


def test_the_view_counts_results_and_skips() -> None:
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"]),
        ev("shard_skipped", T + 1, job="a", shard=0, frames=5),
        ev(
            "shard_done",
            T + 2,
            0,
            "a",
            shard=1,
            frames=4,
            seconds=2.0,
            virus_frames=3,
            others_frames=1,
            histogram=[0] * 19 + [3],
            top=[["f1", 0.9]],
        ),
        ev("run_paused", T + 3),
    )
    assert view.jobs["a"].frames_done == 9 and view.frames_done == 9
    assert (view.virus_frames, view.others_frames, view.histogram[-1]) == (3, 1, 3)
    assert view.top_frames == [("f1", 0.9)] and view.paused
    assert list(view.workers[0].throughput) == [2.0]
    assert [e.type for e in view.log] == [
        "run_started",
        "shard_skipped",
        "shard_done",
        "run_paused",
    ]


def test_progress_and_summary_of_a_finished_run() -> None:
    view = fold(*scenario.finished_events())
    assert view.status.finished and view.status == RunStatus.COMPLETE
    line = progress_line(view, view.finished)
    assert " 100.0% 3,349,116/3,349,116 frames | " in line and "jobs 2/2" in line
    lines = summary_lines(view)
    assert lines[0] == "run complete: 3,349,116 frames in 35:21"
    assert f"    prediction_results.txt: {scenario.OUT}/gut_contigs/prediction_results.txt" in lines
    assert not [x for x in lines if x.startswith("resumable")]


def test_frames_computed_once_and_saved_features_in_progress_and_summary() -> None:
    """With duplicates, progress counts the frames to compute; the summary says how many were
    computed once and names the saved features with their size (docs/features.md)."""
    prepared = ev("job_prepared", T + 1, job="a", chunks_prepared=4, chunks_total=4,
                  frames_prepared=10, done=True, shards_total=1, duplicate_frames=3)  # fmt: skip
    assert notable_text(prepared) == (
        "job a: prepared 10 frames in 1 shards (3 identical frames reuse an earlier result)"
    )
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"]),
        ev("job_started", T, job="a", input="a.fa", out_dir="/r", records=2, chunks_total=4,
           bases=2000),
        prepared,
        ev("shard_done", T + 2, worker=0, job="a", shard=0, frames=7),
    )  # fmt: skip
    assert (view.frames_done, view.frames_total) == (7, 7)  # the 3 duplicates are not computed
    done = ev("job_done", T + 3, job="a", out_dir="/r",
              outputs={"prediction_results.txt": "/r/prediction_results.txt",
                       "prediction_features.pt": "/r/prediction_features.pt"},
              sequences=2, viral_sequences=1, chunks=4, chunks_with_frames=4,
              chunks_without_frames=0, frames=10, virus_frames=5, viral_chunks=2,
              top_sequences=[], skipped_shards=0, seconds=2.0, demo=True, duplicate_frames=3,
              features_path="/r/prediction_features.pt", features_bytes=3 * 2**20)  # fmt: skip
    view.apply(done)
    assert (view.frames_done, view.frames_total) == (10, 10)
    lines = summary_lines(view)
    assert "    prediction_features.pt: /r/prediction_features.pt" in lines
    assert (
        "    computed once: 7 distinct frames; 3 identical frames reuse an earlier result" in lines
    )
    assert "    features: /r/prediction_features.pt (3.0 MiB)" in lines
