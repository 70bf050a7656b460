"""The orchestrator: validates inputs, owns the run directory, feeds the pool, assembles outputs.

It runs in the main process (in a thread under the UI) and never initialises CUDA. Front ends
consume its event stream; they steer it only through the thread-safe methods at the bottom.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virnucpro_tui import __version__
from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.core.dedup import FrameTable, distinct_frames, key_stride
from virnucpro_tui.core.fasta import InputScan, ReadPosition, scan_input
from virnucpro_tui.core.features import ShardFeatures
from virnucpro_tui.core.prepare import prepare_file
from virnucpro_tui.core.shards import (
    CorruptShardError,
    Shard,
    iter_shards,
    read_shard_rows,
)
from virnucpro_tui.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    InputError,
    VirnucproError,
    disk_full_error,
    is_disk_full,
)
from virnucpro_tui.models.identity import model_identities
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.faults import FaultPlan
from virnucpro_tui.pool.local import LocalBackend
from virnucpro_tui.pool.pool import PersistentWorkerPool, PoolPolicy
from virnucpro_tui.pool.telemetry import NvmlTelemetry
from virnucpro_tui.pool.transport import Backend
from virnucpro_tui.pool.worker_config import WorkerConfig, WorkerSettings
from virnucpro_tui.run.assemble import FeatureRequest, assemble_job
from virnucpro_tui.run.hooks import FinishedJob, JobFinishedHook
from virnucpro_tui.run.rundir import NOTICE, PROVENANCE, RunDir, job_names

DEMO_NOTICE = "Demo models with random weights: scores are NOT biological predictions."

MAX_RECOMPUTATIONS = 3  # per job, for results that go bad after they were written


class StopRequested(Exception):
    """Raised inside preparation or assembly when the user asked to stop: both are redone on resume."""


@dataclass
class RunConfig:
    inputs: list[Path]
    out: Path
    models: ModelFiles
    demo: bool = False
    devices: str = "auto"
    engine: EngineSettings = field(default_factory=EngineSettings)
    shard_size: int | None = None
    persistent: bool = True
    restart: bool = False
    backend: str = "local"
    policy: PoolPolicy = field(default_factory=PoolPolicy)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    telemetry_every_s: float = 2.0
    dedup: bool = True  # identical frames computed once (--no-dedup turns it off)
    save_features: bool = False  # --save-features
    features_format: str = "pt"  # --features-format: pt or safetensors
    on_job_finished: JobFinishedHook | None = None  # the report (run --no-report: None)
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    scans: list[InputScan] | None = None  # validation already done by the caller

    @property
    def chunk_length(self) -> int:
        return self.engine.chunk_length

    @property
    def effective_shard_size(self) -> int:
        return self.shard_size or (128 if self.demo else 2048)


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
        return ev.JobSize(self.name, _file_size(self.path), self.scan.records, self.scan.chunks)

    @property
    def complete(self) -> bool:
        return self.produced and len(self.done) >= self.shards_total


class Orchestrator:
    def __init__(
        self,
        cfg: RunConfig,
        sinks: list[ev.EventSink] | None = None,
        backend: Backend[Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.rundir = RunDir(cfg.out)
        self.emit_to = ev.Fanout(*(sinks or []))
        self.commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.jobs: list[JobState] = []
        self.stop_mode: str | None = None
        self.paused = False
        self.pool: PersistentWorkerPool[Any] | None = None
        self.backend: Backend[Any] = backend or LocalBackend()
        self.slots: list[DeviceSlot] = []
        self.telemetry: NvmlTelemetry | None = None
        self._last_telemetry = 0.0
        self._last_prepare_note = 0.0
        self.started = time.time()
        self.manifest: dict[str, Any] = {}
        self.stop_requested = threading.Event()  # set at once by request_stop, from any thread
        self.faults = FaultPlan.for_orchestrator()
        self.finished_seconds: dict[str, float] = {}  # jobs finished in this run (the hook)

    def emit(self, event: ev.Event) -> None:
        self.emit_to(event)

    # -- setup --------------------------------------------------------------------------------
    def _scan_inputs(self) -> list[InputScan]:
        if not self.cfg.inputs:
            raise InputError("no input files given")
        if self.cfg.scans is not None and len(self.cfg.scans) == len(self.cfg.inputs):
            return self.cfg.scans
        return [scan_input(p, self.cfg.chunk_length) for p in self.cfg.inputs]

    def _settings(self) -> dict[str, Any]:
        e = self.cfg.engine
        return {
            "chunk_length": self.cfg.chunk_length,
            "shard_size": self.cfg.effective_shard_size,
            "precision": e.precision,
            "esm_max_tokens": e.esm_max_tokens,
            "dnabert_max_tokens": e.dnabert_max_tokens,
            "dedup": self.cfg.dedup,
            "features": self.cfg.features_format if self.cfg.save_features else None,
        }

    def _model_digests(self) -> dict[str, dict[str, Any]]:
        return model_identities(self.cfg.models)

    def _build_manifest(self, scans: list[InputScan], names: list[str]) -> dict[str, Any]:
        import numpy
        import torch

        inputs = [
            {
                "job": n,
                "path": str(s.path.resolve()),
                "sha256": sha256_file(s.path),  # the file as stored, compressed or not
                "bytes": s.path.stat().st_size,
                "format": s.format.value,
                "compression": s.compression.value,
                "records": s.records,
                "chunks": s.chunks,
                "added": False,
            }
            for n, s in zip(names, scans, strict=False)
        ]
        return {
            "format": "virnucpro-tui-run/1",
            "status": ev.RunStatus.RUNNING,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": self.cfg.command,
            "cwd": os.getcwd(),  # where the command ran: its paths may be relative
            "executable": sys.executable,
            "inputs": inputs,
            "settings": self._settings(),
            "models": self._model_digests(),
            "demo": self.cfg.demo,
            "notice": DEMO_NOTICE if self.cfg.demo else None,
            "devices": [s.label for s in self.slots],
            "backend": self.cfg.backend,
            "versions": {
                "virnucpro-tui": __version__,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": numpy.__version__,
                "fair-esm": _dist_version("fair-esm"),
                "biopython": _dist_version("biopython"),
            },
            "host": platform.node(),
        }

    def _make_jobs(self, scans: list[InputScan], names: list[str]) -> None:
        single = len(scans) == 1
        for name, scan in zip(names, scans, strict=False):
            self.jobs.append(JobState(name, scan.path, self.rundir.job_dir(name, single), scan))

    def _worker_config(self, slot: DeviceSlot, generation: int) -> WorkerConfig:
        threads = (
            max(1, (os.cpu_count() or 1) // max(1, len(self.slots))) if slot.kind == "cpu" else None
        )
        return WorkerConfig(
            slot=slot,
            layout=self.rundir.layout,
            files=self.cfg.models,
            engine=self.cfg.engine,
            settings=self.cfg.worker,
            torch_threads=threads,
            generation=generation,
        )

    def _pool(self) -> PersistentWorkerPool[Any]:
        if self.pool is None:
            raise RuntimeError("the pool is not started yet")
        return self.pool

    def _new_pool(self) -> PersistentWorkerPool[Any]:
        pool = PersistentWorkerPool(
            self.backend, self.slots, self._worker_config, self.emit_to, self.cfg.policy
        )
        if self.paused:
            pool.pause()
        pool.start()
        return pool

    # -- the run ------------------------------------------------------------------------------
    def execute(self) -> int:
        """Run every job to completion. Returns the exit code (0, or 130 when interrupted)."""
        from virnucpro_tui.models.preflight import check_model_files

        scans = self._scan_inputs()
        check_model_files(self.cfg.models)  # every model file, before any worker starts
        self.slots = self.backend.resolve_slots(self.cfg.devices)
        names = job_names([s.path for s in scans])
        self.rundir.acquire()
        writer = None
        try:
            self._make_jobs(scans, names)
            manifest = self._build_manifest(scans, names)
            old = self.rundir.check_resume(
                manifest, self.cfg.restart, [j.out_dir for j in self.jobs]
            )
            self.manifest = (
                manifest  # only now is the directory ours: a refused run leaves it alone
            )
            self.rundir.remove_partial_files([j.out_dir for j in self.jobs])
            self._restore_added_jobs(old)
            self.rundir.write_manifest(self.manifest)
            writer = ev.JsonlWriter(self.rundir.events)
            self.emit_to.add(writer)
            self._announce(resumed=old is not None)
            code = self._run_jobs()
            self._finish(
                ev.RunStatus.COMPLETE if code == EXIT_OK else ev.RunStatus.INTERRUPTED, code
            )
            return code
        except (VirnucproError, OSError) as exc:
            error = self._user_error(exc)
            if error is None:
                raise
            if self.manifest:  # the run had started: its events and manifest record the failure
                self._stop_pool_now()  # its workers' last events come before run_done
                self.emit(ev.ErrorEvent(fatal=True, message=str(error)))
                self._finish(ev.RunStatus.FAILED, 1, error=str(error), resumable=error.resumable)
            if error is exc:
                raise
            raise error from None
        finally:
            self._abandon_producers()
            self._stop_pool_now()
            if self.telemetry is not None:
                self.telemetry.close()
            self.rundir.release()
            if writer is not None:
                writer.close()

    def _stop_pool_now(self) -> None:
        if self.pool is not None and self.pool.started:
            self.pool.stop(graceful=False)

    def _abandon_producers(self) -> None:
        """Close unfinished preparations now, not at interpreter exit: closing flushes their
        records file, which on a full disk fails (resume rewrites it anyway)."""
        for job in self.jobs:
            if job.producer is not None:
                with contextlib.suppress(OSError):
                    job.producer.close()  # type: ignore[attr-defined]
                job.producer = None

    def _user_error(self, exc: Exception) -> VirnucproError | None:
        """The error to show for ``exc``: itself, a disk-full message, or None (unexpected)."""
        if isinstance(exc, VirnucproError):
            return exc
        if is_disk_full(exc):
            return disk_full_error(
                getattr(exc, "filename", None) or self.rundir.root, "writing the run directory"
            )
        return None

    def _announce(self, resumed: bool) -> None:
        self.emit(
            ev.RunStarted(
                out=str(self.rundir.root),
                inputs=tuple(str(j.path) for j in self.jobs),
                jobs=tuple(j.name for j in self.jobs),
                devices=tuple(s.label for s in self.slots),
                workers=tuple(
                    ev.SlotInfo(s.worker, s.kind, s.index, s.uuid, s.name) for s in self.slots
                ),
                demo=self.cfg.demo,
                notice=DEMO_NOTICE if self.cfg.demo else None,
                resumed=resumed,
                chunk_length=self.cfg.chunk_length,
                shard_size=self.cfg.effective_shard_size,
                precision=self.cfg.engine.precision,
                backend=self.cfg.backend,
                pid=os.getpid(),
                persistent=self.cfg.persistent,
                sizes=tuple(j.size for j in self.jobs),
            )
        )
        self.telemetry = NvmlTelemetry([s.uuid for s in self.slots if s.uuid])

    def _run_jobs(self) -> int:
        self.pool = self._new_pool()
        lookahead = max(4, 2 * len(self.slots) + 2)
        while True:
            self._handle_commands()
            if self.stop_mode:
                return self._stop()
            if not self.paused:
                try:
                    while (
                        self.pool.backlog < lookahead and (shard := self._next_shard()) is not None
                    ):
                        self.pool.submit(shard)
                except StopRequested:
                    self._handle_commands()
                    return self._stop()
            for event in self.pool.poll(0.2):
                self._on_pool_event(event)
            self._assemble_finished()
            self._sample_telemetry()
            if (
                all(j.status in (ev.JobStatus.DONE, ev.JobStatus.FAILED) for j in self.jobs)
                and self.commands.empty()
            ):
                self.pool.stop(graceful=True)
                return EXIT_OK

    def _stop(self) -> int:
        self._pool().drain()
        if self.stop_mode == "graceful":
            deadline = time.time() + self.cfg.policy.stop_timeout_s
            while (
                self._pool().in_flight and time.time() < deadline and self.stop_mode == "graceful"
            ):
                for event in self._pool().poll(0.2):
                    self._on_pool_event(event)
                self._handle_commands()
        self._pool().stop(graceful=self.stop_mode == "graceful")
        return EXIT_INTERRUPTED

    def _finish(
        self, status: ev.RunStatus, code: int, error: str | None = None, resumable: bool = True
    ) -> None:
        if not self.manifest:
            return
        resumable = resumable and status != ev.RunStatus.COMPLETE
        self.manifest["status"] = status
        self.manifest["resumable"] = resumable
        if error is not None:
            self.manifest["error"] = error
        self.manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with contextlib.suppress(OSError):
            self.rundir.write_manifest(self.manifest)
        self.emit(
            ev.RunDone(
                status=status,
                exit_code=code,
                seconds=round(time.time() - self.started, 2),
                frames=sum(j.frames_done for j in self.jobs),
                resumable=resumable,
                jobs={j.name: j.status for j in self.jobs},
            )
        )

    # -- producing shards ---------------------------------------------------------------------
    def _next_shard(self) -> Shard | None:
        for job in self.jobs:
            if job.produced:
                continue
            if not self.cfg.persistent and any(
                j.status in (ev.JobStatus.RUNNING, ev.JobStatus.ASSEMBLING)
                for j in self.jobs
                if j is not job and j.produced
            ):
                return None  # --no-persistent: one job at a time, each on a fresh pool
            if job.producer is None:
                self._start_job(job)
            for shard in job.producer:  # type: ignore[union-attr]
                if self._already_done(job, shard):
                    continue
                return shard
            self._job_produced(job)
        return None

    def _start_job(self, job: JobState) -> None:
        if not self.cfg.persistent and any(j.status == ev.JobStatus.DONE for j in self.jobs):
            self._pool().stop(graceful=True)
            self.pool = self._new_pool()
        job.status, job.started_at = ev.JobStatus.RUNNING, time.time()
        job.producer = self._produce(job)
        self.emit(
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
            self.emit(
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
            self.emit(ev.WarningEvent(job=job.name, message=message))

    def _produce(self, job: JobState) -> Iterator[Shard]:
        """The job's shards of frames to compute; its records and duplicates files are renamed
        into place once they are complete (docs/architecture.md#identical-frames-computed-once)."""
        layout = self.rundir.layout
        records, duplicates = layout.records(job.name), layout.duplicates(job.name)
        records.parent.mkdir(parents=True, exist_ok=True)
        records_tmp = records.with_name(records.name + ".partial")
        duplicates_tmp = duplicates.with_name(duplicates.name + ".partial")
        table = (
            FrameTable(layout.dedup_keys(job.name), key_stride(self.cfg.chunk_length))
            if self.cfg.dedup
            else None
        )
        job.duplicate_frames = 0
        try:
            with (
                records_tmp.open("w", encoding="utf-8") as rec_out,
                duplicates_tmp.open("w", encoding="utf-8") as dup_out,
            ):
                frames = distinct_frames(self._frames(job, rec_out, table), table, dup_out)
                yield from iter_shards(
                    frames, job.name, self.cfg.effective_shard_size, self.cfg.save_features
                )
            job.duplicate_frames = table.duplicates if table is not None else 0
            os.replace(records_tmp, records)
            os.replace(duplicates_tmp, duplicates)
        finally:
            if table is not None:
                table.close()

    def _frames(self, job: JobState, rec_out: Any, table: FrameTable | None) -> Iterator[Any]:
        for rec in prepare_file(job.path, self.cfg.chunk_length, job.position):
            if self.stop_requested.is_set():
                raise StopRequested  # the producer is abandoned; a resume prepares the job again
            n_frames = sum(len(f) for f in rec.frames)
            rec_out.write(
                f"{rec.id}\t{rec.length}\t{len(rec.chunks)}\t{rec.chunks_with_frames}\t{n_frames}\n"
            )
            job.chunks_prepared += len(rec.chunks)
            job.frames_prepared += n_frames
            job.duplicate_frames = table.duplicates if table is not None else 0
            self._note_prepare(job)
            yield from rec.all_frames()

    def _note_prepare(self, job: JobState, done: bool = False) -> None:
        now = time.time()
        if done or now - self._last_prepare_note > 1.0:
            self._last_prepare_note = now
            size = _file_size(job.path)
            self.emit(
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

    def _already_done(self, job: JobState, shard: Shard) -> bool:
        job.shards_total = max(job.shards_total, shard.index + 1)
        path = self.rundir.layout.shard_result(job.name, shard.index)
        if not path.exists():
            return False
        try:
            self._verify_shard(job, shard.index, [f.id for f in shard.frames])
        except CorruptShardError as exc:
            self._remove_shard(job, shard.index)
            self.emit(
                ev.WarningEvent(job=job.name, shard=shard.index, message=f"recomputing: {exc}")
            )
            return False
        job.done.add(shard.index)
        job.frames_done += len(shard)
        job.skipped_shards += 1
        self.emit(ev.ShardSkipped(job=job.name, shard=shard.index, frames=len(shard)))
        return True

    def _verify_shard(self, job: JobState, index: int, ids: list[str] | None = None) -> None:
        """Raise ``CorruptShardError`` unless the shard's result (and, with --save-features, its
        features) are whole and belong to these frames."""
        layout = self.rundir.layout
        read_shard_rows(layout.shard_result(job.name, index), job.name, index, ids)
        if self.cfg.save_features:
            features = ShardFeatures.open(layout.shard_features(job.name, index), job.name, index)
            features.verify(ids)

    def _remove_shard(self, job: JobState, index: int) -> None:
        self.rundir.layout.shard_result(job.name, index).unlink(missing_ok=True)
        self.rundir.layout.shard_features(job.name, index).unlink(missing_ok=True)

    def _job_produced(self, job: JobState) -> None:
        job.produced = True
        job.producer = None
        self._note_prepare(job, done=True)

    # -- pool events and assembly -------------------------------------------------------------
    def _on_pool_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.ShardDone):
            return
        job = self._job(event.job)
        if job is not None and event.shard not in job.done:
            job.done.add(event.shard)
            job.frames_done += event.frames

    def _job(self, name: str | None) -> JobState | None:
        return next((j for j in self.jobs if j.name == name), None)

    def _assemble_finished(self) -> None:
        for job in self.jobs:
            if job.status != ev.JobStatus.RUNNING or not job.complete:
                continue
            job.status = ev.JobStatus.ASSEMBLING
            try:
                totals = assemble_job(
                    self.rundir.shards,
                    job.name,
                    job.shards_total,
                    job.out_dir,
                    checkpoint=self._assembly_checkpoint,
                    features=self._feature_request(),
                )
            except CorruptShardError as exc:
                self._recompute_after_corruption(job, exc)
                continue
            except StopRequested:
                job.status = (
                    ev.JobStatus.RUNNING
                )  # nothing was renamed into place; a resume assembles again
                return
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                raise disk_full_error(
                    job.out_dir, f"writing the final outputs of job {job.name}"
                ) from None
            self._write_provenance(job)
            seconds = round(time.time() - job.started_at, 3)
            outputs = {**self._job_finished(job, seconds), **totals.outputs}
            job.status = ev.JobStatus.DONE
            job.frames_done = totals.frames  # the duplicates are done too
            self.emit(
                ev.JobDone(
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
                    demo=self.cfg.demo,
                    duplicate_frames=totals.duplicate_frames,
                    features_path=totals.features_path,
                    features_bytes=totals.features_bytes,
                )
            )

    def _job_finished(self, job: JobState, seconds: float) -> dict[str, str]:
        """The hook's files (the report: report.html first), or none with a warning when it
        fails: the job's outputs are final either way."""
        hook = self.cfg.on_job_finished
        if hook is None:
            return {}
        self.finished_seconds[job.name] = seconds
        finished = FinishedJob(self.rundir.root, job.name, job.out_dir, dict(self.finished_seconds))
        try:
            paths = hook(finished)
        except Exception as exc:  # noqa: BLE001 - the extra files never fail a finished job
            self.emit(
                ev.WarningEvent(
                    job=job.name,
                    message=f"the report of {job.name} was not built ({exc}); build it with: "
                    f"virnucpro-tui report {self.rundir.root}",
                )
            )
            return {}
        return {p.name: str(p) for p in paths}

    def _feature_request(self) -> FeatureRequest | None:
        if not self.cfg.save_features:
            return None
        return FeatureRequest(
            self.cfg.features_format, self.cfg.effective_shard_size, self.faults.in_features
        )

    def _assembly_checkpoint(self, records_written: int) -> None:
        self.faults.in_assembly(records_written, self.stop_requested)
        if self.stop_requested.is_set():
            raise StopRequested

    def _recompute_after_corruption(self, job: JobState, exc: CorruptShardError) -> None:
        """A shard went bad after it was written: recompute this job's bad shards (a bounded
        number of times: results that keep going bad point at the disk, not at the shard)."""
        job.recomputations += 1
        if job.recomputations > MAX_RECOMPUTATIONS:
            raise VirnucproError(
                f"job {job.name}: shard results went bad after they were written "
                f"{job.recomputations} times (last: {exc}); check that {self.rundir.root} is on "
                "a reliable disk that every worker writes to"
            )
        self.emit(ev.WarningEvent(job=job.name, message=f"{exc}; recomputing"))
        job.status = ev.JobStatus.RUNNING
        for index in sorted(job.done):
            try:
                self._verify_shard(job, index)
            except CorruptShardError:
                self._remove_shard(job, index)
        job.produced, job.producer = False, None
        job.chunks_prepared = job.frames_prepared = job.frames_done = job.skipped_shards = 0
        job.duplicate_frames = 0
        job.done.clear()
        job.shards_total = 0

    def _write_provenance(self, job: JobState) -> None:
        import json

        from virnucpro_tui.core.atomic import atomic_write_text

        data = {k: v for k, v in self.manifest.items() if k not in ("inputs", "status")}
        data["input"] = next((i for i in self.manifest["inputs"] if i["job"] == job.name), None)
        data["chunks_without_frames_note"] = (
            "chunks with no stop-free frame produce no rows (docs/architecture.md#the-scientific-contract)"
        )
        atomic_write_text(job.out_dir / PROVENANCE, json.dumps(data, indent=2, default=str) + "\n")
        if self.cfg.demo:
            atomic_write_text(
                job.out_dir / NOTICE,
                DEMO_NOTICE + "\nThese files were made with the demo "
                "models of virnucpro-tui; use the published models for real predictions.\n",
            )

    def _sample_telemetry(self) -> None:
        now = time.time()
        if self.telemetry is None or now - self._last_telemetry < self.cfg.telemetry_every_s:
            return
        self._last_telemetry = now
        readings = self.telemetry.sample()
        for slot in self.slots:
            if slot.uuid in readings:
                self.emit(
                    ev.GpuTelemetry(
                        worker=slot.worker, uuid=slot.uuid, index=slot.index, **readings[slot.uuid]
                    )
                )

    # -- steering (thread-safe: front ends call these from other threads) ---------------------
    def request_stop(self, abandon: bool = False) -> None:
        self.commands.put(("stop", "abandon" if abandon else "graceful"))
        self.stop_requested.set()  # after the command: whoever sees the flag finds the command

    def set_paused(self, paused: bool) -> None:
        self.commands.put(("pause", paused))

    def clear_caches(self) -> None:
        self.commands.put(("clear", None))

    def add_input(self, path: str | Path) -> None:
        self.commands.put(("add", Path(path)))

    def _handle_commands(self) -> None:
        while True:
            try:
                kind, arg = self.commands.get_nowait()
            except queue.Empty:
                return
            if kind == "stop":
                self.stop_mode = "abandon" if "abandon" in (arg, self.stop_mode) else arg
            elif kind == "pause" and bool(arg) != self.paused:
                self.paused = bool(arg)
                if self.paused:  # no new shard starts; those running finish
                    self.emit(ev.RunPaused(shards_running=self._pool().pause()))
                else:
                    self._pool().resume()
                    self.emit(ev.RunResumed())
            elif kind == "clear":
                self._pool().clear_caches("manual")
            elif kind == "add":
                self._add_job(arg)

    def _add_job(self, path: Path) -> None:
        try:
            scan = scan_input(path, self.cfg.chunk_length)
        except InputError as exc:
            self.emit(ev.WarningEvent(message=f"not added: {exc}"))
            return
        existing = [j.name for j in self.jobs]
        name = job_names([*[j.path for j in self.jobs], path])[-1]
        if name in existing:
            name = f"{name}-{len(existing) + 1}"
        job = JobState(name, path, self.rundir.job_dir(name, single=False), scan, added=True)
        self.jobs.append(job)
        self.manifest["inputs"].append(
            {
                "job": name,
                "path": str(path.resolve()),
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
                "format": scan.format.value,
                "compression": scan.compression.value,
                "records": scan.records,
                "chunks": scan.chunks,
                "added": True,
            }
        )
        self.rundir.write_manifest(self.manifest)
        self.emit(
            ev.JobAdded(job=name, input=str(path), records=scan.records, chunks_total=scan.chunks)
        )

    def _restore_added_jobs(self, old: dict[str, Any] | None) -> None:
        """Inputs added from the UI in an earlier session are resumed too."""
        if not old:
            return
        known = {j.name for j in self.jobs}
        for item in old.get("inputs", []):
            if item.get("added") and item["job"] not in known and Path(item["path"]).exists():
                scan = scan_input(item["path"], self.cfg.chunk_length)
                self.jobs.append(
                    JobState(
                        item["job"],
                        Path(item["path"]),
                        self.rundir.job_dir(item["job"], single=False),
                        scan,
                        added=True,
                    )
                )
                self.manifest["inputs"].append(item)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
