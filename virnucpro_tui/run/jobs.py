"""The run's jobs, in input order: one ``JobPipeline`` per input, those given on the command
line and those added from the dashboard (recorded in the manifest, so a resume has them too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from virnucpro_tui.core.fasta import InputScan, scan_input
from virnucpro_tui.core.shards import Shard
from virnucpro_tui.errors import InputError
from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.job import JobPipeline, JobState, RunContext
from virnucpro_tui.run.manifest import Manifest
from virnucpro_tui.run.manifest_builder import input_entry
from virnucpro_tui.run.rundir import job_names

ACTIVE = (ev.JobStatus.RUNNING, ev.JobStatus.ASSEMBLING)


class Jobs:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.pipelines: list[JobPipeline] = []

    @property
    def states(self) -> list[JobState]:
        return [p.state for p in self.pipelines]

    @property
    def out_dirs(self) -> list[Path]:
        return [p.state.out_dir for p in self.pipelines]

    @property
    def all_settled(self) -> bool:
        return all(p.state.settled for p in self.pipelines)

    def _append(self, name: str, scan: InputScan, single: bool, added: bool = False) -> None:
        out_dir = self.ctx.rundir.job_dir(name, single)
        state = JobState(name, scan.path, out_dir, scan, added=added)
        self.pipelines.append(JobPipeline(state, self.ctx))

    def create(self, scans: list[InputScan], names: list[str]) -> None:
        for name, scan in zip(names, scans, strict=False):
            self._append(name, scan, single=len(scans) == 1)

    def restore_added(self, old: Manifest, manifest: Manifest) -> None:
        """Inputs added from the UI in an earlier session are resumed too."""
        known = {p.state.name for p in self.pipelines}
        for item in old.inputs:
            if item.added and item.job not in known and Path(item.path).exists():
                scan = scan_input(item.path, self.ctx.cfg.chunk_length)
                self._append(item.job, scan, single=False, added=True)
                manifest.inputs.append(item)

    def add(self, path: Path, manifest: Manifest) -> None:
        """An input added while the run goes on (``Orchestrator.add_input``); a bad one is
        refused with a warning, the run goes on."""
        try:
            scan = scan_input(path, self.ctx.cfg.chunk_length)
        except InputError as exc:
            self.ctx.emit(ev.WarningEvent(message=f"not added: {exc}"))
            return
        existing = [p.state.name for p in self.pipelines]
        name = job_names([*[p.state.path for p in self.pipelines], path])[-1]
        if name in existing:
            name = f"{name}-{len(existing) + 1}"
        self._append(name, scan, single=False, added=True)
        manifest.inputs.append(input_entry(name, scan, added=True))
        self.ctx.rundir.write_manifest(manifest)
        self.ctx.emit(
            ev.JobAdded(job=name, input=str(path), records=scan.records, chunks_total=scan.chunks)
        )

    def next_shard(self, fresh_pool: Callable[[], None]) -> Shard | None:
        """The next shard to compute, from the first job still producing. Without a persistent
        pool, one job at a time, each after the first on a fresh pool (``fresh_pool``)."""
        persistent = self.ctx.cfg.persistent
        for pipeline in self.pipelines:
            job = pipeline.state
            if job.produced:
                continue
            others = [p.state for p in self.pipelines if p is not pipeline]
            if not persistent and any(o.produced and o.status in ACTIVE for o in others):
                return None
            if (
                job.producer is None
                and not persistent
                and any(o.status == ev.JobStatus.DONE for o in others)
            ):
                fresh_pool()
            if (shard := pipeline.next_shard()) is not None:
                return shard
        return None

    def shard_done(self, event: ev.ShardDone) -> None:
        for pipeline in self.pipelines:
            if pipeline.state.name == event.job:
                pipeline.shard_done(event)
                return

    def assemble_finished(self) -> bool:
        """Assemble every job whose shards are all done. False: a stop was asked meanwhile."""
        return all(p.assemble_if_complete() for p in self.pipelines)

    def abandon_producers(self) -> None:
        for pipeline in self.pipelines:
            pipeline.abandon()
