"""The orchestrator over the fake backend (no worker processes; the demo model files are only
pre-flighted, never loaded): whole runs in well under a second, resume and recompute
bookkeeping checked from the events it emits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.pool.events import Event, JobDone, JobPrepared, RunDone, ShardSkipped
from virnucpro_tui.pool.fake import FakeBackend
from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig

ORF_CODONS = ("GCT", "AAA", "CTG", "ATG", "GGC", "TCA", "CCG", "ACG")


@pytest.fixture
def small_input(tmp_path: Path) -> Path:
    rng = random.Random(5)
    path = tmp_path / "small.fa"
    path.write_text(
        "".join(
            f">orf{i}\n{''.join(rng.choice(ORF_CODONS) for _ in range(200))}\n" for i in range(8)
        )
    )
    return path


@pytest.fixture
def models(demo_models) -> ModelFiles:
    return ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)


def config(inp: Path, out: Path, models: ModelFiles) -> RunConfig:
    return RunConfig(
        inputs=[inp],
        out=out,
        models=models,
        engine=EngineSettings(chunk_length=500),
        devices="cpu:2",
        shard_size=6,
        command=["test"],
    )


def run(cfg: RunConfig, *sinks: object) -> list[Event]:
    seen: list[Event] = []
    backend = FakeBackend(write_results=True)
    code = Orchestrator(cfg, [seen.append, *sinks], backend=backend).execute()  # type: ignore[list-item]
    assert code == 0
    return seen


def test_a_run_on_fake_workers_assembles_its_outputs(
    small_input: Path, tmp_path: Path, models: ModelFiles
) -> None:
    out = tmp_path / "run"
    events = run(config(small_input, out, models))
    (done,) = [e for e in events if isinstance(e, JobDone)]
    assert done.sequences == 8 and done.frames > 6 and done.skipped_shards == 0
    assert (out / "prediction_results.txt").read_text().count("\n") == done.frames + 1
    assert isinstance(events[-1], RunDone) and events[-1].status == "complete"


def test_skipped_shards_are_counted_once_when_a_corrupt_shard_is_recomputed(
    small_input: Path, tmp_path: Path, models: ModelFiles
) -> None:
    out = tmp_path / "run"
    run(config(small_input, out, models))
    shards = sorted((out / "shards" / "small").glob("0*.tsv"))
    (out / "prediction_results.txt").unlink()

    corrupted: list[Path] = []

    def corrupt_after_verification(event: Event) -> None:
        """Between the resume's checks and the assembly, a shard goes bad (once)."""
        if isinstance(event, JobPrepared) and event.done and not corrupted:
            shards[1].write_bytes(shards[1].read_bytes()[:-20])
            corrupted.append(shards[1])

    events = run(config(small_input, out, models), corrupt_after_verification)
    (done,) = [e for e in events if isinstance(e, JobDone)]
    reused = len(shards) - 1  # every shard but the corrupt one was reused, not recomputed
    assert done.skipped_shards == reused
    skipped = [e for e in events if isinstance(e, ShardSkipped)]
    assert len(skipped) == len(shards) + reused  # checked twice: before and after the recompute
