"""PersistentWorkerPool: one worker per device slot, one queue of shards, one supervisor.

Shards wait in one queue held here. A worker gets the next shard as soon as it has room (its
current shard plus one prefetched while the backlog is deep), so a fast GPU is never idle while
a slow one holds a backlog. Dead workers (exit, SIGKILL, a dead Ray actor) and hung ones (no
message for ``hang_timeout_s``) have their shards requeued and are respawned on the same slot,
up to ``max_restarts`` times; a worker whose machine was lost is respawned without counting.
A worker gets shards only once it is ready (a Ray actor waiting for a node with room is not).
Pausing takes back the shards not started yet.

All of this is transport-independent: a ``Backend`` starts the workers and waits for them, a
``WorkerTransport`` carries one worker's shards and messages (``transport.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.errors import DiskFullError, ModelLoadFailure, WorkerFailure
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool import transport as tp
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.worker_config import WorkerConfig

RECALL_TIMEOUT_S = 10.0  # how long pause() waits for the workers to give back their shards


@dataclass
class PoolPolicy:  # supervision settings (run --max-restarts, --hang-timeout)
    max_restarts: int = 3
    hang_timeout_s: float = 120.0
    # a worker not started yet (a Ray actor booting on a loaded node) gets at least this long
    start_timeout_s: float = 60.0
    max_shard_attempts: int = 3
    prefetch: int = 1
    stop_timeout_s: float = 30.0


@dataclass
class WorkerHandle(Generic[tp.T]):
    """The pool's record of one slot's worker (across its restarts)."""

    slot: DeviceSlot
    transport: tp.T | None = None
    generation: int = 0
    restarts: int = 0  # the restarts that count against the limit (``generation`` counts all)
    state: ev.WorkerState = ev.WorkerState.STARTING
    assigned: deque[Shard] = field(default_factory=deque)  # sent, not finished, in order
    running: tp.ShardKey | None = None  # the assigned shard it has started
    recalling: bool = False  # a Recall is out, unanswered
    last_message: float = 0.0
    retired: bool = False
    stopping: bool = False
    models_loaded: bool = False
    waiting_noted: bool = False  # told the user it waits to start

    @property
    def n(self) -> int:
        return self.slot.worker

    @property
    def alive(self) -> bool:
        return self.transport is not None and self.transport.alive

    @property
    def ready(self) -> bool:
        return self.alive and self.transport is not None and self.transport.ready

    def take(self, key: tp.ShardKey) -> Shard | None:
        """Remove the assigned shard ``key`` (finished, failed or recalled)."""
        for shard in self.assigned:
            if shard.key == key:
                self.assigned.remove(shard)
                if self.running == key:
                    self.running = None
                return shard
        return None


class PersistentWorkerPool(Generic[tp.T]):
    def __init__(
        self,
        backend: tp.Backend[tp.T],
        slots: list[DeviceSlot],
        make_config: Callable[[DeviceSlot, int], WorkerConfig],
        emit: ev.EventSink,
        policy: PoolPolicy | None = None,
    ) -> None:
        self.backend = backend
        self.make_config = make_config
        self.emit = emit
        self.policy = policy or PoolPolicy()
        self.clock = backend.now
        self.workers: list[WorkerHandle[tp.T]] = [WorkerHandle(slot) for slot in slots]
        self.queue: deque[Shard] = deque()
        self.attempts: dict[tp.ShardKey, int] = {}
        self.started = False
        self.last_failure = ""
        self._paused = False
        self._draining = False
        self._unreported: list[
            ev.Event
        ] = []  # events handled outside ``poll``, returned by it next

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.workers:
            config = self.make_config(self.workers[0].slot, 0)
            for warning in self.backend.open([w.slot for w in self.workers], config.layout):
                self.emit(ev.WarningEvent(message=warning))
        for w in self.workers:
            self._spawn(w)
        self.started = True

    def _spawn(self, w: WorkerHandle[tp.T]) -> None:
        w.transport = self.backend.spawn(self.make_config(w.slot, w.generation))
        w.state, w.models_loaded, w.running, w.recalling = (
            ev.WorkerState.STARTING,
            False,
            None,
            False,
        )
        w.last_message, w.waiting_noted = self.clock(), False

    def stop(self, graceful: bool = True) -> None:
        """Stop every worker; graceful lets them finish what they hold, else they are killed."""
        for w in self.workers:
            w.stopping = True
            if w.ready and graceful and w.transport is not None:
                w.transport.send(tp.Stop())
            elif w.alive and w.transport is not None and not w.ready:
                w.transport.kill()  # it never started: it holds nothing to finish
        deadline = self.clock() + (self.policy.stop_timeout_s if graceful else 0)
        while graceful and self.clock() < deadline and any(w.alive for w in self.workers):
            self._unreported += self._receive(0.2)
        for w in self.workers:
            if w.transport is not None:
                if w.alive:
                    w.transport.kill()
                w.transport.close()
            if w.state != ev.WorkerState.STOPPED:
                w.state = ev.WorkerState.STOPPED
                self.emit(
                    ev.WorkerStateChanged(
                        worker=w.n, state=ev.WorkerState.STOPPED, device=w.slot.label
                    )
                )
        self.started = False

    # -- work -------------------------------------------------------------------------------
    def submit(self, shard: Shard, front: bool = False) -> None:
        (self.queue.appendleft if front else self.queue.append)(shard)

    @property
    def backlog(self) -> int:
        return len(self.queue)

    @property
    def in_flight(self) -> int:
        return sum(len(w.assigned) for w in self.workers)

    @property
    def running(self) -> int:
        """Shards a worker has started and not finished."""
        return sum(1 for w in self.workers if w.running is not None)

    @property
    def paused(self) -> bool:
        return self._paused

    def live_workers(self) -> list[WorkerHandle[tp.T]]:
        return [w for w in self.workers if not w.retired]

    def clear_caches(self, reason: str = "manual") -> None:
        for w in self.workers:
            if w.alive and w.transport is not None:
                w.transport.send(tp.ClearCache(reason))

    def pause(self) -> int:
        """No new shard starts from now on: the shards sent but not started come back to the
        front of the queue. Returns how many started shards are still running (they finish)."""
        self._paused = True
        asked = [w for w in self.workers if w.alive and w.assigned and w.transport is not None]
        for w in asked:
            w.recalling = w.transport is not None and w.transport.send(tp.Recall())
        deadline = self.clock() + RECALL_TIMEOUT_S
        while any(w.recalling and w.alive for w in asked) and self.clock() < deadline:
            self._unreported += self._receive(0.05)
        return self.running

    def resume(self) -> None:
        self._paused = False
        self._dispatch()

    def drain(self) -> None:
        """Stop dispatching for good and drop the queue; the shards sent still run."""
        self._draining = True
        self.queue.clear()

    def _dispatch(self) -> None:
        if self._paused or self._draining:
            return
        live = self.live_workers()
        for w in live:
            if not w.ready or w.stopping or w.transport is None:
                continue
            depth = 1 + (self.policy.prefetch if len(self.queue) > len(live) else 0)
            while self.queue and len(w.assigned) < depth:
                shard = self.queue.popleft()
                if not w.transport.send(tp.RunShard(shard)):
                    self.queue.appendleft(shard)
                    break
                w.assigned.append(shard)

    # -- messages and supervision -------------------------------------------------------------
    def poll(self, timeout: float, supervise: bool = True) -> list[ev.Event]:
        """Dispatch, wait up to ``timeout`` for worker messages, supervise. Returns the events."""
        self._dispatch()
        events, self._unreported = self._unreported, []
        events += self._receive(timeout)
        if supervise:
            events.extend(self._supervise())
        self._dispatch()
        return events

    def _receive(self, timeout: float) -> list[ev.Event]:
        watched = [w.transport for w in self.workers if w.alive and w.transport is not None]
        if watched:
            self.backend.wait(watched, timeout)
        events: list[ev.Event] = []
        for w in self.workers:
            if w.transport is None:
                continue
            for message in w.transport.receive():
                event = self._on_message(w, message)
                if event is not None:
                    events.append(event)
        return events

    def _on_message(self, w: WorkerHandle[tp.T], message: tp.WorkerMessage) -> ev.Event | None:
        w.last_message = self.clock()
        if isinstance(message, tp.Recalled):
            self._on_recalled(w, message)
            return None
        event = message
        if isinstance(event, ev.WorkerStateChanged):
            w.state = event.state
            if event.state == ev.WorkerState.BUSY and isinstance(event.shard, int):
                w.running = tp.shard_key(event.job, event.shard)
        elif isinstance(event, ev.ModelLoad):
            if event.phase == ev.ModelPhase.DONE and event.model == "classifier":
                w.models_loaded = True
        elif isinstance(event, ev.ShardDone):
            w.take(tp.shard_key(event.job, event.shard))
        elif (
            isinstance(event, ev.ErrorEvent)
            and isinstance(event.shard, int)
            and not event.fatal
            and not event.disk_full
        ):
            shard = w.take(tp.shard_key(event.job, event.shard))
            if shard is not None:
                self._retry(shard, event.message)
        self.emit(event)
        if isinstance(event, ev.ErrorEvent) and event.disk_full:
            raise DiskFullError(event.message)  # every retry would hit the same disk
        if isinstance(event, ev.ErrorEvent) and event.fatal:  # sent when loading fails
            raise ModelLoadFailure(
                f"worker {w.n} ({w.slot.label}) could not load the models ({event.message}); "
                f"see {RunLayout.worker_log_name(w.n)}: running the same command again will "
                "fail the same way until that is fixed"
            )
        return event

    def _on_recalled(self, w: WorkerHandle[tp.T], reply: tp.Recalled) -> None:
        w.recalling = False
        if reply.running is not None and any(s.key == reply.running for s in w.assigned):
            w.running = reply.running  # not one whose result came in before this reply
        back = [shard for key in reply.shards if (shard := w.take(key)) is not None]
        self.queue.extendleft(reversed(back))

    def _retry(self, shard: Shard, reason: str) -> None:
        n = self.attempts[shard.key] = self.attempts.get(shard.key, 0) + 1
        if n >= self.policy.max_shard_attempts:
            first = shard.frames[0].id if shard.frames else "?"
            raise WorkerFailure(
                f"shard {shard.key} (frames from {first}) failed {n} times; last error: {reason}"
            )
        self.submit(shard, front=True)
        self.emit(ev.ShardRequeued(job=shard.job, shard=shard.index, attempt=n, reason=reason))

    def _supervise(self) -> list[ev.Event]:
        now = self.clock()
        out: list[ev.Event] = []
        for w in self.workers:
            if w.retired or w.stopping or w.transport is None:
                continue
            reason = w.transport.exit_reason()
            if reason is not None:
                out += self._recover(w, reason)
            elif now - w.last_message > self.policy.hang_timeout_s:
                ready, silent = w.transport.ready, now - w.last_message
                if not ready and self._others_working(w):
                    out += self._note_waiting(w)  # it holds no shard: let it wait for room
                    continue
                if not ready and silent <= self.policy.start_timeout_s:
                    continue  # still starting: a slow start is not a hang
                w.transport.kill()
                out += self._recover(w, _silence(ready, silent, w.n))
        if not self.live_workers():
            raise WorkerFailure(
                f"every worker failed past its restart limit ({self.policy.max_restarts} "
                f"restarts each); last: {self.last_failure}"
            )
        return out

    def _others_working(self, w: WorkerHandle[tp.T]) -> bool:
        return any(o is not w and o.ready and not o.retired for o in self.workers)

    def _note_waiting(self, w: WorkerHandle[tp.T]) -> list[ev.Event]:
        if w.waiting_noted:
            return []
        w.waiting_noted = True
        event = ev.WarningEvent(
            worker=w.n,
            message=f"worker {w.n} ({w.slot.label}) has not started after "
            f"{self.policy.hang_timeout_s:.0f} s: waiting for a place to run (a Ray node with room "
            "for it) or still starting; the run goes on with the other workers",
        )
        self.emit(event)
        return [event]

    def _recover(self, w: WorkerHandle[tp.T], reason: str) -> list[ev.Event]:
        # a worker whose machine was lost is not at fault: its restart is not counted
        counted = not (w.transport is not None and w.transport.host_lost)
        events: list[ev.Event] = [
            ev.WorkerStateChanged(
                worker=w.n, state=ev.WorkerState.CRASHED, device=w.slot.label, reason=reason
            )
        ]
        self.emit(events[-1])
        if w.transport is not None:
            w.transport.close()
        w.running, w.recalling = None, False
        retire = counted and w.restarts >= self.policy.max_restarts
        if retire:
            w.retired = True
            log = RunLayout.worker_log_name(w.n)
            self.last_failure = f"worker {w.n} ({w.slot.label}) {reason}; see {log}"
            events.append(
                ev.ErrorEvent(
                    worker=w.n,
                    fatal=False,
                    message=f"worker {w.n} ({w.slot.label}) {reason}; restart limit "
                    f"({self.policy.max_restarts}) reached, retired",
                )
            )
            self.emit(events[-1])
        while w.assigned:
            shard = w.assigned.pop()
            if retire and not self.live_workers():
                self.submit(shard, front=True)  # nobody left to run it; the run fails below
            else:
                self._retry(shard, f"worker {w.n} {reason}")
        if retire:
            return events
        w.generation += 1
        w.restarts += int(counted)
        events.append(
            ev.WorkerStateChanged(
                worker=w.n,
                state=ev.WorkerState.RESTARTING,
                device=w.slot.label,
                generation=w.generation,
                reason=reason,
            )
        )
        self.emit(events[-1])
        self._spawn(w)
        return events


def _silence(ready: bool, seconds: float, worker: int) -> str:
    """Why a silent worker is killed: hung, or it never started."""
    if ready:
        return f"hung: no heartbeat for {seconds:.0f} s, killed"
    return (
        f"did not start within {seconds:.0f} s (no node had room for it, or it failed to "
        f"start: see {RunLayout.worker_log_name(worker)}), killed"
    )
