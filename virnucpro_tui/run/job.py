"""One input's way through a run: ``JobPipeline`` owns its ``JobState`` and takes it through
produce (prepare the frames into shards) -> skip the shards already verified on disk ->
(the pool computes the rest) -> assemble the outputs -> recompute what went bad after it was
written. ``finished`` is the one place a job ends (docs/architecture.md#a-job)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec

from virnucpro_tui.core.atomic import atomic_write_text
from virnucpro_tui.core.dedup import FrameTable, distinct_frames, key_stride
from virnucpro_tui.core.fasta import InputScan, ReadPosition
from virnucpro_tui.core.features import ShardFeatures
from virnucpro_tui.core.prepare import prepare_file
from virnucpro_tui.core.shards import CorruptShardError, Shard, iter_shards, read_shard_rows
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.errors import VirnucproError, disk_full_error, is_disk_full
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.faults import FaultPlan
from virnucpro_tui.run.assemble import FeatureRequest, JobTotals, assemble_job
from virnucpro_tui.run.config import DEMO_NOTICE, RunConfig
from virnucpro_tui.run.hooks import FinishedJob
from virnucpro_tui.run.manifest import Manifest
from virnucpro_tui.run.rundir import NOTICE, PROVENANCE, RunDir

MAX_RECOMPUTATIONS = 3  # per job, for results that go bad after they were written


class StopRequested(Exception):
    """Raised inside preparation or assembly when the user asked to stop: both are redone on resume."""


@dataclass
class JobState:
    name: str
    path: Path
    out_dir: Path
    scan: InputScan
    added: bool = False
    status: ev.JobStatus = ev.JobStatus.QUEUED
    produced: bool = False
    shards_total: int = 0
    done: set[int] = field(default_factory=set)
    frames_done: int = 0
    chunks_prepared: int = 0
    frames_prepared: int = 0
    skipped_shards: int = 0
    duplicate_frames: int = 0  # prepared frames that copy an identical frame's result
    recomputations: int = 0  # times its results went bad after they were written
    producer: Iterator[Shard] | None = None
    started_at: float = 0.0
    position: ReadPosition = field(default_factory=ReadPosition)  # bytes of the input read

    @property
    def size(self) -> ev.JobSize:
        """The input's size, known before preparation (``run_started`` lists them)."""
        return ev.JobSize(self.name, file_size(self.path), self.scan.records, self.scan.chunks)

    @property
    def complete(self) -> bool:
        return self.produced and len(self.done) >= self.shards_total

    @property
    def settled(self) -> bool:
        return self.status in (ev.JobStatus.DONE, ev.JobStatus.FAILED)


@dataclass
class RunContext:
    """What every job of a run shares."""

    cfg: RunConfig
    rundir: RunDir
    emit: ev.EventSink
    stop_requested: threading.Event
    manifest: Callable[[], Manifest]
    faults: FaultPlan = field(default_factory=FaultPlan.for_orchestrator)
    last_prepare_note: float = 0.0  # progress of preparation: one event a second at most
    finished_seconds: dict[str, float] = field(default_factory=dict)  # jobs finished, this run


class JobPipeline:
    def __init__(self, state: JobState, ctx: RunContext) -> None:
        self.state, self.ctx = state, ctx

    # -- produce, skipping the shards verified on disk ----------------------------------------
    def start(self) -> None:
        job = self.state
        job.status, job.started_at = ev.JobStatus.RUNNING, time.time()
        job.producer = self._produce()
        self.ctx.emit(
            ev.JobStarted(
                job=job.name,
                input=str(job.path),
                out_dir=str(job.out_dir),
                records=job.scan.records,
                chunks_total=job.scan.chunks,
                bases=job.scan.bases,
            )
        )
        if job.scan.rna_records:
            self.ctx.emit(
                ev.WarningEvent(
                    job=job.name,
                    message=(
                        f"{job.path}: records such as '{job.scan.rna_records[0]}' contain U; as "
                        "in the published tool, only A/C/G/T codons are translated, so convert "
                        "RNA to DNA first for meaningful frames"
                    ),
                )
            )
        for message in job.scan.warnings:
            self.ctx.emit(ev.WarningEvent(job=job.name, message=message))

    def next_shard(self) -> Shard | None:
        """The job's next shard to compute, or None once every shard is produced."""
        job = self.state
        if job.producer is None:
            self.start()
        for shard in job.producer:  # type: ignore[union-attr]
            if not self._already_done(shard):
                return shard
        job.produced, job.producer = True, None
        self._note_prepare(done=True)
        return None

    def abandon(self) -> None:
        """Close an unfinished preparation now, not at interpreter exit: closing flushes its
        records file, which on a full disk fails (resume rewrites it anyway)."""
        if self.state.producer is not None:
            with contextlib.suppress(OSError):
                self.state.producer.close()  # type: ignore[attr-defined]
            self.state.producer = None

    def _produce(self) -> Iterator[Shard]:
        """The job's shards of frames to compute; its records and duplicates files are renamed
        into place once they are complete (docs/architecture.md#identical-frames-computed-once)."""
        job, cfg, layout = self.state, self.ctx.cfg, self.ctx.rundir.layout
        records, duplicates = layout.records(job.name), layout.duplicates(job.name)
        records.parent.mkdir(parents=True, exist_ok=True)
        records_tmp = records.with_name(records.name + ".partial")
        duplicates_tmp = duplicates.with_name(duplicates.name + ".partial")
        table = (
            FrameTable(layout.dedup_keys(job.name), key_stride(cfg.chunk_length))
            if cfg.dedup
            else None
        )
        job.duplicate_frames = 0
        try:
            with (
                records_tmp.open("w", encoding="utf-8") as rec_out,
                duplicates_tmp.open("w", encoding="utf-8") as dup_out,
            ):
                frames = distinct_frames(self._frames(rec_out, table), table, dup_out)
                yield from iter_shards(
                    frames, job.name, cfg.effective_shard_size, cfg.save_features
                )
            job.duplicate_frames = table.duplicates if table is not None else 0
            os.replace(records_tmp, records)
            os.replace(duplicates_tmp, duplicates)
        finally:
            if table is not None:
                table.close()

    def _frames(self, rec_out: TextIO, table: FrameTable | None) -> Iterator[Frame]:
        job = self.state
        for rec in prepare_file(job.path, self.ctx.cfg.chunk_length, job.position):
            if self.ctx.stop_requested.is_set():
                raise StopRequested  # the producer is abandoned; a resume prepares the job again
            n_frames = sum(len(f) for f in rec.frames)
            rec_out.write(
                f"{rec.id}\t{rec.length}\t{len(rec.chunks)}\t{rec.chunks_with_frames}\t{n_frames}\n"
            )
            job.chunks_prepared += len(rec.chunks)
            job.frames_prepared += n_frames
            job.duplicate_frames = table.duplicates if table is not None else 0
            self._note_prepare()
            yield from rec.all_frames()

    def _note_prepare(self, done: bool = False) -> None:
        job, now = self.state, time.time()
        if not done and now - self.ctx.last_prepare_note <= 1.0:
            return
        self.ctx.last_prepare_note = now
        size = file_size(job.path)
        self.ctx.emit(
            ev.JobPrepared(
                job=job.name,
                chunks_prepared=job.chunks_prepared,
                chunks_total=job.scan.chunks,
                frames_prepared=job.frames_prepared,
                duplicate_frames=job.duplicate_frames,
                done=done,
                shards_total=job.shards_total if done else None,
                bytes_read=size if done else min(job.position.bytes, size),
                bytes_total=size,
            )
        )

    def _already_done(self, shard: Shard) -> bool:
        job = self.state
        job.shards_total = max(job.shards_total, shard.index + 1)
        if not self.ctx.rundir.layout.shard_result(job.name, shard.index).exists():
            return False
        try:
            self._verify_shard(shard.index, [f.id for f in shard.frames])
        except CorruptShardError as exc:
            self._remove_shard(shard.index)
            self.ctx.emit(
                ev.WarningEvent(job=job.name, shard=shard.index, message=f"recomputing: {exc}")
            )
            return False
        job.done.add(shard.index)
        job.frames_done += len(shard)
        job.skipped_shards += 1
        self.ctx.emit(ev.ShardSkipped(job=job.name, shard=shard.index, frames=len(shard)))
        return True

    def _verify_shard(self, index: int, ids: list[str] | None = None) -> None:
        """Raise ``CorruptShardError`` unless the shard's result (and, with --save-features, its
        features) are whole and belong to these frames."""
        layout, name = self.ctx.rundir.layout, self.state.name
        read_shard_rows(layout.shard_result(name, index), name, index, ids)
        if self.ctx.cfg.save_features:
            features = ShardFeatures.open(layout.shard_features(name, index), name, index)
            features.verify(ids)

    def _remove_shard(self, index: int) -> None:
        self.ctx.rundir.layout.shard_result(self.state.name, index).unlink(missing_ok=True)
        self.ctx.rundir.layout.shard_features(self.state.name, index).unlink(missing_ok=True)

    # -- the pool's results, assembly, recompute ----------------------------------------------
    def shard_done(self, event: ev.ShardDone) -> None:
        if event.shard not in self.state.done:
            self.state.done.add(event.shard)
            self.state.frames_done += event.frames

    def assemble_if_complete(self) -> bool:
        """Assemble the outputs once every shard is done. False: a stop was requested during
        assembly (nothing was renamed into place; a resume assembles again)."""
        job, cfg = self.state, self.ctx.cfg
        if job.status != ev.JobStatus.RUNNING or not job.complete:
            return True
        job.status = ev.JobStatus.ASSEMBLING
        features = (
            FeatureRequest(
                cfg.features_format, cfg.effective_shard_size, self.ctx.faults.in_features
            )
            if cfg.save_features
            else None
        )
        try:
            totals = assemble_job(
                self.ctx.rundir.shards,
                job.name,
                job.shards_total,
                job.out_dir,
                checkpoint=self._assembly_checkpoint,
                features=features,
            )
        except CorruptShardError as exc:
            self._recompute_after_corruption(exc)
            return True
        except StopRequested:
            job.status = ev.JobStatus.RUNNING
            return False
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            where = f"writing the final outputs of job {job.name}"
            raise disk_full_error(job.out_dir, where) from None
        self.finished(totals)
        return True

    def _assembly_checkpoint(self, records_written: int) -> None:
        self.ctx.faults.in_assembly(records_written, self.ctx.stop_requested)
        if self.ctx.stop_requested.is_set():
            raise StopRequested

    def finished(self, totals: JobTotals) -> None:
        """The job's outputs are in place: write its provenance, run the finished-job hook (the
        report), and announce it. Whatever else a finished job writes belongs here."""
        job = self.state
        self._write_provenance()
        seconds = round(time.time() - job.started_at, 3)
        outputs = {**self._run_hook(seconds), **totals.outputs}
        job.status = ev.JobStatus.DONE
        job.frames_done = totals.frames  # the duplicates are done too
        self.ctx.emit(job_done_event(job, totals, outputs, seconds, self.ctx.cfg.demo))

    def _run_hook(self, seconds: float) -> dict[str, str]:
        """The hook's files (the report: report.html first), or none with a warning when it
        fails: the job's outputs are final either way."""
        hook, job, root = self.ctx.cfg.on_job_finished, self.state, self.ctx.rundir.root
        if hook is None:
            return {}
        self.ctx.finished_seconds[job.name] = seconds
        finished = FinishedJob(root, job.name, job.out_dir, dict(self.ctx.finished_seconds))
        try:
            paths = hook(finished)
        except Exception as exc:  # noqa: BLE001 - the extra files never fail a finished job
            self.ctx.emit(
                ev.WarningEvent(
                    job=job.name,
                    message=f"the report of {job.name} was not built ({exc}); build it with: "
                    f"virnucpro-tui report {root}",
                )
            )
            return {}
        return {p.name: str(p) for p in paths}

    def _recompute_after_corruption(self, exc: CorruptShardError) -> None:
        """A shard went bad after it was written: recompute this job's bad shards (a bounded
        number of times: results that keep going bad point at the disk, not at the shard)."""
        job = self.state
        job.recomputations += 1
        if job.recomputations > MAX_RECOMPUTATIONS:
            raise VirnucproError(
                f"job {job.name}: shard results went bad after they were written "
                f"{job.recomputations} times (last: {exc}); check that {self.ctx.rundir.root} is "
                "on a reliable disk that every worker writes to"
            )
        self.ctx.emit(ev.WarningEvent(job=job.name, message=f"{exc}; recomputing"))
        job.status = ev.JobStatus.RUNNING
        for index in sorted(job.done):
            try:
                self._verify_shard(index)
            except CorruptShardError:
                self._remove_shard(index)
        job.produced, job.producer = False, None
        job.chunks_prepared = job.frames_prepared = job.frames_done = job.skipped_shards = 0
        job.duplicate_frames = 0
        job.done.clear()
        job.shards_total = 0

    def _write_provenance(self) -> None:
        job, manifest = self.state, self.ctx.manifest()
        data: dict[str, Any] = {
            k: v for k, v in msgspec.to_builtins(manifest).items() if k not in ("inputs", "status")
        }
        entry = manifest.entry(job.name)
        data["input"] = msgspec.to_builtins(entry) if entry is not None else None
        data["chunks_without_frames_note"] = (
            "chunks with no stop-free frame produce no rows (docs/architecture.md#the-scientific-contract)"
        )
        atomic_write_text(job.out_dir / PROVENANCE, json.dumps(data, indent=2, default=str) + "\n")
        if self.ctx.cfg.demo:
            atomic_write_text(
                job.out_dir / NOTICE,
                DEMO_NOTICE + "\nThese files were made with the demo "
                "models of virnucpro-tui; use the published models for real predictions.\n",
            )


def job_done_event(
    job: JobState, totals: JobTotals, outputs: dict[str, str], seconds: float, demo: bool
) -> ev.JobDone:
    return ev.JobDone(
        job=job.name,
        out_dir=str(job.out_dir),
        outputs=outputs,
        sequences=totals.sequences,
        viral_sequences=totals.viral_sequences,
        chunks=totals.chunks,
        chunks_with_frames=totals.chunks_with_frames,
        chunks_without_frames=totals.chunks - totals.chunks_with_frames,
        frames=totals.frames,
        virus_frames=totals.virus_frames,
        viral_chunks=totals.viral_chunks,
        top_sequences=tuple(totals.top_sequences),
        skipped_shards=job.skipped_shards,
        seconds=seconds,
        demo=demo,
        duplicate_frames=totals.duplicate_frames,
        features_path=totals.features_path,
        features_bytes=totals.features_bytes,
    )


def run_started_event(
    cfg: RunConfig, root: Path, jobs: list[JobState], slots: list[DeviceSlot], resumed: bool
) -> ev.RunStarted:
    return ev.RunStarted(
        out=str(root),
        inputs=tuple(str(j.path) for j in jobs),
        jobs=tuple(j.name for j in jobs),
        devices=tuple(s.label for s in slots),
        workers=tuple(ev.SlotInfo(s.worker, s.kind, s.index, s.uuid, s.name) for s in slots),
        demo=cfg.demo,
        notice=DEMO_NOTICE if cfg.demo else None,
        resumed=resumed,
        chunk_length=cfg.chunk_length,
        shard_size=cfg.effective_shard_size,
        precision=cfg.engine.precision,
        backend=cfg.backend,
        pid=os.getpid(),
        persistent=cfg.persistent,
        sizes=tuple(j.size for j in jobs),
    )


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
