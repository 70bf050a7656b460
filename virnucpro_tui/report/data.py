"""What a report is made of, read from a run directory: the manifest, each job's provenance and
results (its outputs, or with ``--partial`` its verified shards), and the run's events.

Works on any run directory this tool wrote, including those written before the report existed:
it reads only the manifest, ``provenance.json``, the published outputs and ``events.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virnucpro_tui.core.outputs import PREDICTION_FILE, SUMMARY_FILE, Prediction, SequenceSummary
from virnucpro_tui.core.result_blocks import ResultBlock, blocks_from_results, read_result_blocks
from virnucpro_tui.core.results import SequenceResult, chunk_calls
from virnucpro_tui.core.shards import CorruptShardError, shard_path
from virnucpro_tui.errors import InputError, VirnucproError
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.run.assemble import iter_job_frames, read_records
from virnucpro_tui.run.attach import EventTail, check_run_dir, resume_command
from virnucpro_tui.run.rundir import PROVENANCE


class RunNotFinishedError(VirnucproError):
    """``report`` on a run that has not finished (exit 1): the message says how to finish it."""


@dataclass
class JobSource:
    """One input of the run: where its outputs are and what its provenance says."""

    name: str
    results_dir: Path
    input: dict[str, Any]
    provenance: dict[str, Any]
    seconds: float | None = None  # wall time, from job_done (or the run that just finished it)
    finished: bool = True


@dataclass
class RunSource:
    root: Path
    manifest: dict[str, Any]
    jobs: list[JobSource]
    partial: bool = False
    events: list[ev.Event] = field(default_factory=list)
    live: bool = False  # built by ``run`` as an input finishes: the run is still going

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.root)

    @property
    def demo(self) -> bool:
        return bool(self.manifest.get("demo"))

    @property
    def chunk_length(self) -> int:
        return int(self.manifest.get("settings", {}).get("chunk_length", 500))

    @property
    def seconds(self) -> float | None:
        """The run's wall time; while it runs, since it started."""
        done = [e for e in self.events if isinstance(e, ev.RunDone)]
        if done:
            return done[-1].seconds
        started = [e.ts for e in self.events if isinstance(e, ev.RunStarted)]
        return time.time() - started[-1] if self.live and started else None

    @property
    def status(self) -> str:
        """The run's state as the page says it, from the facts when it is built: the manifest's
        status, or while the run goes on, how many of its inputs are done (all done: complete,
        as their outputs are final; the workers only stop after that)."""
        if self.partial:
            return "partial"
        if not self.live:
            return str(self.manifest.get("status", "unknown"))
        done, total = sum(j.finished for j in self.jobs), len(self.manifest["inputs"])
        return "complete" if done == total else f"running: {done} of {total} inputs done"

    def blocks(self, job: JobSource) -> Iterator[ResultBlock]:
        """The job's sequences in input order with their frames and chunk calls, in blocks."""
        if job.finished:
            return read_result_blocks(job.results_dir)
        return blocks_from_results(partial_results(self.layout, job.name))


def load_run(
    root: Path, partial: bool = False, finished_jobs: dict[str, float] | None = None
) -> RunSource:
    """The run at ``root``. Raises InputError (exit 2) when it is not a run or its results are
    unreadable, RunNotFinishedError when it has not finished (unless ``partial``).
    ``finished_jobs`` (job -> seconds) names the jobs a live run has just finished: their
    outputs are final although the run is still going."""
    check_run_dir(root)
    layout = RunLayout(root)
    manifest = _read_json(layout.manifest)
    if manifest is None or not isinstance(manifest.get("inputs"), list):
        raise InputError(f"{root}: not a virnucpro-tui run directory (no readable manifest.json)")
    complete = manifest.get("status") == "complete"
    if not (complete or partial or finished_jobs):
        raise RunNotFinishedError(_not_finished(root, manifest))
    events = _read_events(layout)
    done = {e.job: e.seconds for e in events if isinstance(e, ev.JobDone) and e.job}
    done.update(finished_jobs or {})
    single = len(manifest["inputs"]) == 1
    jobs = []
    for entry in manifest["inputs"]:
        name = str(entry["job"])
        results_dir = layout.job_dir(name, single)
        if finished_jobs is not None and name not in done:
            continue  # a live run: only the jobs finished so far
        has_outputs = (results_dir / SUMMARY_FILE).is_file()
        finished = has_outputs and (name in done or complete)
        if not finished and not partial:
            raise InputError(f"{results_dir}: no {SUMMARY_FILE} (the run's outputs were moved?)")
        if finished and not (results_dir / PREDICTION_FILE).is_file():
            raise InputError(f"{results_dir / PREDICTION_FILE}: missing (moved or deleted?)")
        provenance = _read_json(results_dir / PROVENANCE) or manifest
        jobs.append(
            JobSource(name, results_dir, entry, provenance, done.get(name), finished=finished)
        )
    return RunSource(
        root,
        manifest,
        jobs,
        partial=partial and not complete,
        events=events,
        live=finished_jobs is not None and not complete,
    )


def _not_finished(root: Path, manifest: dict[str, Any]) -> str:
    status = manifest.get("status", "unknown")
    command = resume_command(RunLayout(root).manifest)
    how = f"finish it with: {command}" if command else "finish it by running its command again"
    return (
        f"{root}: the run has not finished (status {status}); {how} "
        "(or pass --partial for a report of the shards done so far)"
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_events(layout: RunLayout) -> list[ev.Event]:
    tail = EventTail(layout.events)
    try:
        return tail.backlog()
    finally:
        tail.close()


# -- --partial: the verified shards ---------------------------------------------------------------
def partial_results(layout: RunLayout, job: str) -> Iterator[SequenceResult]:
    """The sequences whose frames all lie in the shards verified so far, in input order: the
    consecutive verified shards from the first, joined with the records prepared so far."""
    records_path = layout.records(job)
    if not records_path.exists():
        records_path = records_path.with_name(records_path.name + ".partial")
        if not records_path.exists():
            return
    shards = 0
    while shard_path(layout.shards, job, shards).exists():
        shards += 1
    frames = _safe_frames(iter_job_frames(layout.shards, job, shards))
    for summary in _complete_records(records_path):
        preds = [p for _, p in zip(range(summary.frames), frames, strict=False)]
        if len(preds) < summary.frames:
            return
        chunks = chunk_calls(preds)
        summary.viral_chunks = sum(c.is_virus for c in chunks.values())
        summary.max_virus_score = max((p.p_virus for p in preds), default=None)
        yield SequenceResult(summary, preds, chunks)


def _safe_frames(frames: Iterator[tuple[Prediction, int]]) -> Iterator[Prediction]:
    """The frames until the first shard that is missing or fails its checksum."""
    try:
        for pred, _ in frames:
            yield pred
    except (CorruptShardError, ValueError):
        return


def _complete_records(path: Path) -> Iterator[SequenceSummary]:
    try:
        yield from read_records(path)
    except ValueError:  # the torn last line of a records file still being written
        return
