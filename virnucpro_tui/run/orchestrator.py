"""The orchestrator: the poll loop of a run and the events that tell it.

It runs in the main process (in a thread under the UI) and never initialises CUDA. It opens the
run directory (``rundir.py``, ``manifest.py``), hands each input to its ``JobPipeline``
(``job.py``: produce, skip verified shards, assemble, recompute), feeds the pool their shards,
and takes the front ends' typed steering commands (``steering.py``) between polls. Front ends
consume its event stream and steer it only through the thread-safe methods at the bottom.
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Any

from virnucpro_tui.core.fasta import InputScan
from virnucpro_tui.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    VirnucproError,
    disk_full_error,
    is_disk_full,
)
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.event_sinks import Fanout, JsonlWriter
from virnucpro_tui.pool.local import LocalBackend
from virnucpro_tui.pool.pool import PersistentWorkerPool
from virnucpro_tui.pool.transport import Backend
from virnucpro_tui.run.config import RunConfig
from virnucpro_tui.run.job import (
    MAX_RECOMPUTATIONS,
    RunContext,
    StopRequested,
    run_started_event,
)
from virnucpro_tui.run.jobs import Jobs
from virnucpro_tui.run.manifest import Manifest
from virnucpro_tui.run.manifest_builder import new_manifest
from virnucpro_tui.run.rundir import RunDir, job_names
from virnucpro_tui.run.steering import AddInput, ClearCaches, SetPaused, Steering, StopRun
from virnucpro_tui.run.telemetry import TelemetrySampler


class Orchestrator:
    def __init__(
        self,
        cfg: RunConfig,
        sinks: list[ev.EventSink] | None = None,
        backend: Backend[Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.rundir = RunDir(cfg.out)
        self.emit = Fanout(*(sinks or []))
        self.steering = Steering()
        self.stop_mode: str | None = None  # "graceful" or "abandon" once a stop is asked
        self.paused = False
        self.pool: PersistentWorkerPool[Any] | None = None
        self.backend: Backend[Any] = backend or LocalBackend()
        self.slots: list[DeviceSlot] = []
        self.telemetry: TelemetrySampler | None = None
        self.started = time.time()
        self.manifest: Manifest | None = None
        ctx = RunContext(cfg, self.rundir, self.emit, self.steering.stop_requested, self._manifest)
        self.jobs = Jobs(ctx)

    def _manifest(self) -> Manifest:
        if self.manifest is None:
            raise RuntimeError("the run directory is not open yet")
        return self.manifest

    # -- the run ------------------------------------------------------------------------------
    def execute(self) -> int:
        """Run every job to completion. Returns the exit code (0, or 130 when interrupted)."""
        from virnucpro_tui.models.preflight import check_model_files

        scans = self.cfg.scan_inputs()
        check_model_files(self.cfg.models)  # every model file, before any worker starts
        self.slots = self.backend.resolve_slots(self.cfg.devices)
        self.rundir.acquire()
        writer = None
        try:
            resumed = self._open_run_dir(scans)
            writer = JsonlWriter(self.rundir.events)
            self.emit.add(writer)
            self._announce(resumed)
            code = self._run_jobs()
            status = ev.RunStatus.COMPLETE if code == EXIT_OK else ev.RunStatus.INTERRUPTED
            self._finish(status, code)
            return code
        except (VirnucproError, OSError) as exc:
            self._fail(exc)
            raise
        finally:
            self.jobs.abandon_producers()
            self._stop_pool_now()
            if isinstance(self.backend, LocalBackend):
                self.backend.release()  # standbys no worker took (pool/standby.py)
            if self.telemetry is not None:
                self.telemetry.close()
            self.rundir.release()
            if writer is not None:
                writer.close()

    def _open_run_dir(self, scans: list[InputScan]) -> bool:
        """Check the run directory holds this run or none, and make it ours. True: a resume."""
        names = job_names([s.path for s in scans])
        self.jobs.create(scans, names)
        fresh = new_manifest(self.cfg, scans, names, [s.label for s in self.slots])
        old = self.rundir.check_resume(fresh, self.cfg.restart, self.jobs.out_dirs)
        self.manifest = fresh  # only now is the directory ours: a refused run leaves it alone
        self.rundir.remove_partial_files(self.jobs.out_dirs)
        if old is not None:
            self.jobs.restore_added(old, fresh)
        self.rundir.write_manifest(fresh)
        return old is not None

    def _fail(self, exc: Exception) -> None:
        """Record a failure the user can act on in the events and the manifest, and raise it as
        its one-line error; anything else is re-raised by the caller as it is."""
        error = exc if isinstance(exc, VirnucproError) else None
        if error is None and is_disk_full(exc):
            where = getattr(exc, "filename", None) or self.rundir.root
            error = disk_full_error(where, "writing the run directory")
        if error is None:
            return
        if self.manifest is not None:  # the run had started: record the failure
            self._stop_pool_now()  # its workers' last events come before run_done
            self.emit(ev.ErrorEvent(fatal=True, message=str(error)))
            self._finish(ev.RunStatus.FAILED, 1, error=str(error), resumable=error.resumable)
        if error is not exc:
            raise error from None

    def _stop_pool_now(self) -> None:
        if self.pool is not None and self.pool.started:
            self.pool.stop(graceful=False)

    def _announce(self, resumed: bool) -> None:
        root, jobs = self.rundir.root, self.jobs.states
        self.emit(run_started_event(self.cfg, root, jobs, self.slots, resumed))
        self.telemetry = TelemetrySampler(self.slots, self.cfg.telemetry_every_s, self.emit)

    def _new_pool(self) -> PersistentWorkerPool[Any]:
        config = functools.partial(self.cfg.worker_config, self.rundir.layout, len(self.slots))
        pool = PersistentWorkerPool(self.backend, self.slots, config, self.emit, self.cfg.policy)
        if self.paused:
            pool.pause()
        pool.start()
        return pool

    def _run_jobs(self) -> int:
        self.pool = self._new_pool()
        lookahead = max(4, 2 * len(self.slots) + 2)
        while True:
            self._handle_commands()
            if self.stop_mode:
                return self._stop()
            try:
                while not self.paused and self._pool().backlog < lookahead:
                    if (shard := self.jobs.next_shard(self._fresh_pool)) is None:
                        break
                    self._pool().submit(shard)
            except StopRequested:
                self._handle_commands()
                return self._stop()
            self._poll()
            self.jobs.assemble_finished()
            if self.telemetry is not None:
                self.telemetry.sample()
            if self.jobs.all_settled and self.steering.empty():
                self._pool().stop(graceful=True)
                return EXIT_OK

    def _poll(self) -> None:
        for event in self._pool().poll(0.2):
            if isinstance(event, ev.ShardDone):
                self.jobs.shard_done(event)

    def _pool(self) -> PersistentWorkerPool[Any]:
        if self.pool is None:
            raise RuntimeError("the pool is not started yet")
        return self.pool

    def _fresh_pool(self) -> None:
        """--no-persistent: each job after the first starts on a fresh pool (models reloaded)."""
        self._pool().stop(graceful=True)
        self.pool = self._new_pool()

    def _stop(self) -> int:
        self._pool().drain()
        deadline = time.time() + self.cfg.policy.stop_timeout_s
        while self.stop_mode == "graceful" and self._pool().in_flight and time.time() < deadline:
            self._poll()
            self._handle_commands()
        self._pool().stop(graceful=self.stop_mode == "graceful")
        return EXIT_INTERRUPTED

    def _finish(
        self, status: ev.RunStatus, code: int, error: str | None = None, resumable: bool = True
    ) -> None:
        if self.manifest is None:
            return
        resumable = resumable and status != ev.RunStatus.COMPLETE
        self.manifest.ended(status, resumable, error)
        with contextlib.suppress(OSError):
            self.rundir.write_manifest(self.manifest)
        self.emit(
            ev.RunDone(
                status=status,
                exit_code=code,
                seconds=round(time.time() - self.started, 2),
                frames=sum(j.frames_done for j in self.jobs.states),
                resumable=resumable,
                jobs={j.name: j.status for j in self.jobs.states},
            )
        )

    # -- steering (thread-safe: front ends call these from other threads) ---------------------
    def request_stop(self, abandon: bool = False) -> None:
        self.steering.put(StopRun(abandon))

    def set_paused(self, paused: bool) -> None:
        self.steering.put(SetPaused(paused))

    def clear_caches(self) -> None:
        self.steering.put(ClearCaches())

    def add_input(self, path: str | Path) -> None:
        self.steering.put(AddInput(Path(path)))

    def _handle_commands(self) -> None:
        for command in self.steering.pending():
            if isinstance(command, StopRun):
                abandon = command.abandon or self.stop_mode == "abandon"
                self.stop_mode = "abandon" if abandon else "graceful"
            elif isinstance(command, SetPaused) and command.paused != self.paused:
                self.paused = command.paused
                if self.paused:  # no new shard starts; those running finish
                    self.emit(ev.RunPaused(shards_running=self._pool().pause()))
                else:
                    self._pool().resume()
                    self.emit(ev.RunResumed())
            elif isinstance(command, ClearCaches):
                self._pool().clear_caches("manual")
            elif isinstance(command, AddInput):
                self.jobs.add(command.path, self._manifest())


__all__ = ["MAX_RECOMPUTATIONS", "Orchestrator", "RunConfig", "StopRequested"]
