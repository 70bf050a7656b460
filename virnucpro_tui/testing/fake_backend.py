"""An in-memory backend: workers that follow the real worker's protocol (states, model loads,
progress, results, heartbeats, recall) without processes or models, in virtual or real time.

It lets the pool's supervision be tested in milliseconds (kill, hang, slow worker, a failure on
the Nth shard, restart limits, prefetch, pause, stop) and the orchestrator be driven at many
slots with instant workers. Faults use ``FaultPlan``'s keys, per worker and generation, with the
same meaning as in a real worker (docs/reliability.md).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
from msgspec import UNSET, UnsetType

from virnucpro_tui.core.shards import Shard, ShardResult, write_shard_result
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool import transport as tp
from virnucpro_tui.pool.devices import DeviceSlot, resolve_devices
from virnucpro_tui.pool.faults import FaultPlan
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.worker_config import WorkerConfig

P_VIRUS = 0.25  # every frame's score: a fake run's outputs are valid files, not predictions


@dataclass
class FakeWorkerPlan:
    """How one slot's fake worker behaves: its speed, and faults (``FaultPlan`` keys; they apply
    to the generations the plan names, default the first only)."""

    seconds_per_shard: float = 0.0
    load_seconds: float = 0.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    host_lost_on_shard: int = 0  # the first generation's host is lost as it starts its Nth shard
    unplaced_generations: tuple[int, ...] = ()  # these never find a host: not ready, silent
    placed_after_s: float = math.inf  # ... unless they find one (and start) this long after spawn
    # a frame id's P(virus) in the written result files (default P_VIRUS for every frame; the
    # events still report P_VIRUS): varied calls for tests of what is made from the outputs
    p_virus: Callable[[str], float] | None = None


class FakeTransport:
    """One fake worker. ``advance(now)`` plays what it does up to ``now``."""

    def __init__(
        self,
        config: WorkerConfig,
        plan: FakeWorkerPlan,
        now: float,
        write_results: bool,
        wall_offset: float = 0.0,
    ) -> None:
        self.config = config
        self.wall_offset = wall_offset  # clock -> Unix time, for the events' ``ts``
        self.n = config.slot.worker
        self.plan = plan
        self.faults = plan.faults.for_worker(self.n, config.generation)
        self.write_results = write_results
        self.pid = 100_000 + 100 * self.n + config.generation
        self.inbox: deque[Shard] = deque()
        self.outbox: list[tp.WorkerMessage] = []
        self.current: Shard | None = None
        self.current_ends = math.inf
        self.started: list[str] = []  # keys of the shards started, in order
        self.most_held = 0  # the most shards it held at once (running + waiting)
        self.loaded = False
        self.stopping = False
        self.hung = False
        self.state = ev.WorkerState.STARTING
        self.unplaced = config.generation in plan.unplaced_generations
        self.placed_at = now + plan.placed_after_s if self.unplaced else now
        self._host_lost = False
        self._exit: str | None = None
        self._now = now
        self._next_heartbeat = now + config.settings.heartbeat_s
        if not self.unplaced:
            self._place(now)

    # -- the transport protocol ---------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._exit is None

    @property
    def ready(self) -> bool:
        return not self.unplaced

    @property
    def host_lost(self) -> bool:
        return self._host_lost

    def send(self, command: tp.Command) -> bool:
        if not self.alive:
            return False
        if self.hung:
            return True  # a stopped process's pipe still takes bytes
        if isinstance(command, tp.RunShard):
            self.inbox.append(command.shard)
            self.most_held = max(self.most_held, len(self.inbox) + (self.current is not None))
        elif isinstance(command, tp.Recall):
            recalled, self.inbox = tuple(s.key for s in self.inbox), deque()
            running = self.current.key if self.current is not None else None
            self.outbox.append(tp.Recalled(recalled, running))
        elif isinstance(command, tp.ClearCache):
            self._clear_cache(command.reason)
        elif isinstance(command, tp.Stop):
            self.stopping = True
        return True

    def receive(self) -> list[tp.WorkerMessage]:
        messages, self.outbox = self.outbox, []
        return messages

    def exit_reason(self) -> str | None:
        return self._exit

    def kill(self) -> None:
        self._exit = self._exit or "exited with signal SIGKILL"

    def close(self) -> None:
        pass

    # -- the simulation -----------------------------------------------------------------------
    def _stamp(self, now: float) -> float:
        """An event's ``ts`` (Unix time, as a real worker's) at clock time ``now``."""
        return round(now + self.wall_offset, 3) if self.wall_offset else now

    def _place(self, now: float) -> None:
        self.unplaced = False
        self._next_heartbeat = now + self.config.settings.heartbeat_s
        self._set_state(now, ev.WorkerState.STARTING, uuid=self.config.slot.uuid)
        self._set_state(now, ev.WorkerState.IDLE)

    def next_due(self) -> float:
        if self.alive and self.unplaced:
            return self.placed_at
        if not self.alive or self.hung:
            return math.inf
        if self.current is None and (self.inbox or self.stopping):
            return -math.inf  # due now
        return min(self._next_heartbeat, self.current_ends)

    def advance(self, now: float) -> None:
        self._now = now
        if self.unplaced and now >= self.placed_at:
            self._place(self.placed_at)
        if self.unplaced:
            return  # waiting for a host: nothing happens
        while self.alive and not self.hung:
            if self.current is not None and now >= self.current_ends:
                self._finish(now)
            elif self.current is None and self.inbox:
                self._start(now, self.inbox.popleft())
            elif self.current is None and self.stopping:
                self._set_state(now, ev.WorkerState.STOPPED)
                self._exit = "exited with code 0"
            else:
                break
        while self.alive and not self.hung and self._next_heartbeat <= now:
            self._heartbeat(self._next_heartbeat)
            self._next_heartbeat += self.config.settings.heartbeat_s

    def _start(self, now: float, shard: Shard) -> None:
        number = len(self.started) + 1
        self.started.append(shard.key)
        if self.config.generation == 0 and self.plan.host_lost_on_shard == number:
            self._exit, self._host_lost = "node lost (its host is gone)", True
            return
        if self.faults.exit_on_shard == number:
            self._exit = "exited with code 9"
            return
        if self.faults.hang_on_shard == number:
            self.hung = True
            return
        self.current, self.current_ends = shard, now + self.plan.seconds_per_shard
        if not self.loaded:
            self._set_state(now, ev.WorkerState.LOADING, job=shard.job)
            if self.faults.fail_load:
                self._fail_load(now, shard)
                return
            self._load(now, shard)
            self.current_ends += self.plan.load_seconds
        self._set_state(
            now, ev.WorkerState.BUSY, job=shard.job, shard=shard.index, frames=len(shard)
        )
        started = ev.Progress.shard_started(self.n, shard.job, shard.index, len(shard))
        self.outbox.append(msgspec.structs.replace(started, ts=self._stamp(now)))

    def _load(self, now: float, shard: Shard) -> None:
        for model in ev.MODELS:
            for phase in (ev.ModelPhase.START, ev.ModelPhase.DONE):
                done = phase == ev.ModelPhase.DONE
                self.outbox.append(
                    ev.ModelLoad(
                        ts=self._stamp(now),
                        worker=self.n,
                        job=shard.job,
                        model=model,
                        phase=phase,
                        source="fake",
                        shard=shard.index,
                        dtype="float32",
                        seconds=self.plan.load_seconds / len(ev.MODELS) if done else UNSET,
                        bytes_on_device=0 if done else UNSET,
                    )
                )
        self.loaded = True

    def _fail_load(self, now: float, shard: Shard) -> None:
        self._error(now, shard, "RuntimeError: model loading failed (injected fault)", fatal=True)
        self._set_state(now, ev.WorkerState.CRASHED, reason="model load failed")
        self._exit = "exited with code 2"

    def _finish(self, now: float) -> None:
        shard, number = self.current, len(self.started)
        assert shard is not None
        self.current, self.current_ends = None, math.inf
        if self.faults.fail_on_shard == number:
            self._error(now, shard, f"RuntimeError: shard {shard.key} failed (injected fault)")
        elif self.faults.enospc_on_shard_write == number:
            message = "[Errno 28] No space left on device (injected fault)"
            self._error(now, shard, message, disk_full=True)
        else:
            self._write(shard)
            histogram = [0] * ev.HISTOGRAM_BINS
            histogram[int(P_VIRUS * ev.HISTOGRAM_BINS)] = len(shard)
            self.outbox.append(
                ev.ShardDone(
                    ts=self._stamp(now),
                    worker=self.n,
                    job=shard.job,
                    shard=shard.index,
                    frames=len(shard),
                    seconds=self.plan.seconds_per_shard,
                    tokens=0,
                    virus_frames=0,
                    others_frames=len(shard),
                    histogram=tuple(histogram),
                    top=tuple((f.id, P_VIRUS) for f in shard.frames[:5]),
                )
            )
        self._set_state(now, ev.WorkerState.IDLE)

    def _error(
        self,
        now: float,
        shard: Shard,
        message: str,
        fatal: bool = False,
        disk_full: bool | UnsetType = UNSET,
    ) -> None:
        error = ev.ErrorEvent.of_shard(
            self.n, shard, message, ts=self._stamp(now), fatal=fatal, disk_full=disk_full
        )
        self.outbox.append(error)

    def _write(self, shard: Shard) -> None:
        if not self.write_results:
            return
        import numpy as np

        score = self.plan.p_virus or (lambda _frame_id: P_VIRUS)
        p = np.array([score(f.id) for f in shard.frames], dtype=np.float32)
        probs = np.stack([1 - p, p], axis=1)
        result = ShardResult(shard.job, shard.index, [f.id for f in shard.frames], probs)
        write_shard_result(self.config.layout.shard_result(shard.job, shard.index), result)

    def _clear_cache(self, reason: str) -> None:
        now, before = self._now, self.state
        self._set_state(now, ev.WorkerState.CLEARING, reason=reason)
        self.outbox.append(
            ev.CacheCleared(
                ts=self._stamp(now),
                worker=self.n,
                reason=reason,
                bytes_freed=0,
                reserved_before=0,
                reserved_after=0,
            )
        )
        self._set_state(now, before)

    def _heartbeat(self, now: float) -> None:
        self.outbox.append(
            ev.Heartbeat(
                ts=self._stamp(now),
                worker=self.n,
                state=self.state,
                shard=self.current.index if self.current is not None else None,
                since_progress=0.0,
                pid=self.pid,
            )
        )

    def _set_state(
        self,
        now: float,
        state: ev.WorkerState,
        job: str | None = None,
        shard: int | UnsetType = UNSET,
        frames: int | UnsetType = UNSET,
        reason: str | UnsetType = UNSET,
        uuid: str | None | UnsetType = UNSET,
    ) -> None:
        self.state = state
        self.outbox.append(
            ev.WorkerStateChanged(
                ts=self._stamp(now),
                worker=self.n,
                job=job,
                state=state,
                device=self.config.slot.label,
                pid=self.pid,
                generation=self.config.generation,
                shard=shard,
                frames=frames,
                reason=reason,
                uuid=uuid,
            )
        )


class FakeBackend:
    """Fake workers for ``PersistentWorkerPool`` or an ``Orchestrator``.

    ``virtual_time``: time stands still until the pool waits, then jumps to the next thing a
    worker does (a test of a 120 s hang takes milliseconds); otherwise it is the real clock.
    ``plans``: per worker number; others get ``default``. ``write_results``: write real shard
    result files (an orchestrator can then assemble outputs)."""

    name = "fake"

    def __init__(
        self,
        plans: Mapping[int, FakeWorkerPlan] | None = None,
        default: FakeWorkerPlan | None = None,
        virtual_time: bool = True,
        write_results: bool = False,
    ) -> None:
        self.plans = dict(plans or {})
        self.default = default or FakeWorkerPlan()
        self.virtual_time = virtual_time
        self.write_results = write_results
        self.spawned: list[FakeTransport] = []
        self.opened: list[tuple[list[DeviceSlot], RunLayout]] = []
        self.warnings: list[str] = []  # what ``open`` tells the user
        self._now = 1_000.0

    def now(self) -> float:
        return self._now if self.virtual_time else time.monotonic()

    def resolve_slots(self, spec: str) -> list[DeviceSlot]:
        return resolve_devices(spec, gpus=[])

    def open(self, slots: Sequence[DeviceSlot], layout: RunLayout) -> list[str]:
        self.opened.append((list(slots), layout))
        return list(self.warnings)

    def spawn(self, config: WorkerConfig) -> FakeTransport:
        plan = self.plans.get(config.slot.worker, self.default)
        # in real time the clock is monotonic; events carry Unix time like a real worker's
        offset = 0.0 if self.virtual_time else time.time() - time.monotonic()
        transport = FakeTransport(config, plan, self.now(), self.write_results, offset)
        self.spawned.append(transport)
        return transport

    def wait(self, transports: Sequence[FakeTransport], timeout: float) -> None:
        now = self.now()
        if not any(t.outbox for t in transports):
            due = min((t.next_due() for t in transports), default=math.inf)
            until = max(now, min(now + timeout, due))
            if self.virtual_time:
                self._now = until
            else:
                time.sleep(until - now)
        for t in transports:
            t.advance(self.now())

    def workers(self, n: int) -> list[FakeTransport]:
        """Every fake process worker ``n`` has had, oldest first."""
        return [t for t in self.spawned if t.n == n]
