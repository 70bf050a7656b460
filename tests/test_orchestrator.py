"""The orchestrator over the fake backend (no worker processes; the demo model files are only
pre-flighted, never loaded): whole runs in well under a second, resume and recompute
bookkeeping checked from the events it emits."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.helpers import fake_run_config, orf, run_fake
from virnucpro_tui.errors import VirnucproError
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.pool.events import (
    Event,
    JobDone,
    JobPrepared,
    RunDone,
    ShardDone,
    ShardSkipped,
    WarningEvent,
    WorkerStateChanged,
)
from virnucpro_tui.run.orchestrator import MAX_RECOMPUTATIONS, Orchestrator, RunConfig
from virnucpro_tui.testing.fake_backend import FakeBackend


@pytest.fixture
def small_input(tmp_path: Path) -> Path:
    rng = random.Random(5)
    path = tmp_path / "small.fa"
    path.write_text("".join(f">orf{i}\n{orf(600, rng)}\n" for i in range(8)))
    return path


@pytest.fixture
def models(demo_models) -> ModelFiles:
    return ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)


def config(inp: Path, out: Path, models: ModelFiles) -> RunConfig:
    return fake_run_config([inp], out, models)


def test_a_run_on_fake_workers_assembles_its_outputs(
    small_input: Path, tmp_path: Path, models: ModelFiles
) -> None:
    out = tmp_path / "run"
    events = run_fake(config(small_input, out, models))
    (done,) = [e for e in events if isinstance(e, JobDone)]
    assert done.sequences == 8 and done.frames > 6 and done.skipped_shards == 0
    assert (out / "prediction_results.txt").read_text().count("\n") == done.frames + 1
    assert isinstance(events[-1], RunDone) and events[-1].status == "complete"


def test_skipped_shards_are_counted_once_when_a_corrupt_shard_is_recomputed(
    small_input: Path, tmp_path: Path, models: ModelFiles
) -> None:
    out = tmp_path / "run"
    run_fake(config(small_input, out, models))
    shards = sorted((out / "shards" / "small").glob("0*.tsv"))
    (out / "prediction_results.txt").unlink()

    corrupted: list[Path] = []

    def corrupt_after_verification(event: Event) -> None:
        """Between the resume's checks and the assembly, a shard goes bad (once)."""
        if isinstance(event, JobPrepared) and event.done and not corrupted:
            shards[1].write_bytes(shards[1].read_bytes()[:-20])
            corrupted.append(shards[1])

    events = run_fake(config(small_input, out, models), corrupt_after_verification)
    (done,) = [e for e in events if isinstance(e, JobDone)]
    reused = len(shards) - 1  # every shard but the corrupt one was reused, not recomputed
    assert done.skipped_shards == reused
    skipped = [e for e in events if isinstance(e, ShardSkipped)]
    assert len(skipped) == len(shards) + reused  # checked twice: before and after the recompute


def test_fake_workers_in_real_time_stamp_their_events_in_unix_time(
    small_input: Path, tmp_path: Path, models: ModelFiles
) -> None:
    """In real time the fake backend's clock is monotonic; its workers' events still carry Unix
    time, like a real worker's, so the dashboard's rates and "silent for" ages are right
    (scripts/capacity.py drives the dashboard with them)."""
    seen: list[Event] = []
    backend = FakeBackend(virtual_time=False, write_results=True)
    start = time.time()
    code = Orchestrator(
        config(small_input, tmp_path / "run", models), [seen.append], backend=backend
    ).execute()  # type: ignore[list-item]
    end = time.time()
    assert code == 0
    from_workers = [
        e for e in seen if isinstance(e, ShardDone) or (isinstance(e, WorkerStateChanged) and e.pid)
    ]
    assert len(from_workers) > 4
    assert all(start - 0.01 <= e.ts <= end + 0.01 for e in from_workers), [e.ts for e in seen]


def test_results_that_keep_going_bad_end_the_run_with_a_clear_error(
    small_input: Path, tmp_path: Path, models: ModelFiles
) -> None:
    """A result that is unreadable every time (e.g. a worker writing to another disk) is
    recomputed a bounded number of times, then the run fails saying where to look; it does not
    loop for ever."""
    out = tmp_path / "run"
    seen: list[Event] = []

    def corrupt_every_assembly(event: Event) -> None:
        if isinstance(event, JobPrepared) and event.done:
            first = sorted((out / "shards" / "small").glob("0*.tsv"))[0]
            first.write_bytes(first.read_bytes()[:-20])

    backend = FakeBackend(write_results=True)
    orchestrator = Orchestrator(
        config(small_input, out, models), [seen.append, corrupt_every_assembly], backend=backend
    )  # type: ignore[list-item]
    with pytest.raises(VirnucproError, match=r"job small: shard results went bad .* 4 times"):
        orchestrator.execute()
    recomputing = [e for e in seen if isinstance(e, WarningEvent) and "recomputing" in e.message]
    assert len(recomputing) == MAX_RECOMPUTATIONS
    assert isinstance(seen[-1], RunDone) and seen[-1].status == "failed"
    assert not (out / "prediction_results.txt").exists()
