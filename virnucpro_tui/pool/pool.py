"""PersistentWorkerPool: spawns one worker per device, hands out shards, supervises.

Shards wait in one queue held here. A worker gets the next shard as soon as it has room (its
current shard plus one prefetched while the backlog is deep), so a fast GPU is never idle while
a slow one holds a backlog. Dead workers (exit, SIGKILL) and hung ones (no heartbeat) have their
shards requeued and are respawned on the same device, up to ``max_restarts`` times.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from typing import Any

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.errors import DiskFullError, WorkerFailure
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.events import Event, EventSink, make_event
from virnucpro_tui.pool.worker import STOP_SIGNALS, WorkerConfig, worker_environment, worker_main

_ENV_LOCK = threading.Lock()


@dataclass
class WorkerHandle:
    slot: DeviceSlot
    process: Any = None
    conn: Connection | None = None
    generation: int = 0
    restarts: int = 0  # restarts that count against the limit (generation counts them all)
    state: str = "starting"
    assigned: deque[Shard] = field(default_factory=deque)
    last_heartbeat: float = 0.0
    retired: bool = False
    stopping: bool = False
    models_loaded: bool = False

    @property
    def n(self) -> int:
        return self.slot.worker

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


@dataclass
class PoolPolicy:
    max_restarts: int = 3
    hang_timeout_s: float = 60.0
    max_shard_attempts: int = 3
    prefetch: int = 1
    stop_timeout_s: float = 30.0


class PersistentWorkerPool:
    def __init__(
        self,
        slots: list[DeviceSlot],
        make_config: Callable[[DeviceSlot, int], WorkerConfig],
        emit: EventSink,
        policy: PoolPolicy | None = None,
    ) -> None:
        self.ctx = mp.get_context("spawn")
        self.make_config = make_config
        self.emit = emit
        self.policy = policy or PoolPolicy()
        self.workers = [WorkerHandle(slot) for slot in slots]
        self.queue: deque[Shard] = deque()
        self.attempts: dict[str, int] = {}
        self.paused = False
        self.started = False
        self.last_failure = ""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        for w in self.workers:
            self._spawn(w)
        self.started = True

    def _spawn(self, w: WorkerHandle) -> None:
        cfg = self.make_config(w.slot, w.generation)
        cfg.parent_pid = os.getpid()
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        with _ENV_LOCK:  # the child must see its CUDA settings before it imports torch
            saved = {k: os.environ.get(k) for k in worker_environment(cfg)}
            os.environ.update(worker_environment(cfg))
            # A Ctrl-C in the terminal (or a SIGTERM to the job) reaches the whole process group.
            # A worker ignores them once it runs, but not while its interpreter starts: it starts
            # with them blocked. (The resource tracker, started by the first spawn, would unblock
            # them: start it first.)
            resource_tracker.ensure_running()
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                proc = self.ctx.Process(
                    target=worker_main, args=(cfg, child_conn), name=f"virnucpro-worker-{w.n}"
                )
                proc.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child_conn.close()
        w.process, w.conn, w.state = proc, parent_conn, "starting"
        w.last_heartbeat = time.time()
        w.models_loaded = False

    def stop(self, graceful: bool = True) -> None:
        """Stop every worker; graceful lets them finish what they hold, else they are killed."""
        for w in self.workers:
            w.stopping = True
            if w.alive and w.conn is not None and graceful:
                with contextlib.suppress(BrokenPipeError, OSError):
                    w.conn.send(("stop",))
        deadline = time.time() + (self.policy.stop_timeout_s if graceful else 0)
        while graceful and time.time() < deadline and any(w.alive for w in self.workers):
            self.poll(0.2, supervise=False)
        for w in self.workers:
            if w.alive:
                _kill(w.process)
            if w.process is not None:
                w.process.join(timeout=5)
            if w.conn is not None:
                w.conn.close()
            if w.state != "stopped":
                w.state = "stopped"
                self.emit(
                    make_event("worker_state", worker=w.n, state="stopped", device=w.slot.label)
                )
        self.started = False

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None and w.alive]

    # -- work -------------------------------------------------------------------------------
    def submit(self, shard: Shard, front: bool = False) -> None:
        (self.queue.appendleft if front else self.queue.append)(shard)

    @property
    def backlog(self) -> int:
        return len(self.queue)

    @property
    def in_flight(self) -> int:
        return sum(len(w.assigned) for w in self.workers)

    def live_workers(self) -> list[WorkerHandle]:
        return [w for w in self.workers if not w.retired]

    def clear_caches(self, reason: str = "manual") -> None:
        for w in self.workers:
            if w.alive and w.conn is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    w.conn.send(("clear_cache", reason))

    def _dispatch(self) -> None:
        if self.paused:
            return
        live = self.live_workers()
        for w in live:
            if not w.alive or w.conn is None or w.stopping:
                continue
            depth = 1 + (self.policy.prefetch if len(self.queue) > len(live) else 0)
            while self.queue and len(w.assigned) < depth:
                shard = self.queue.popleft()
                try:
                    w.conn.send(("task", shard))
                except (BrokenPipeError, OSError):
                    self.queue.appendleft(shard)
                    break
                w.assigned.append(shard)

    # -- events and supervision -------------------------------------------------------------
    def poll(self, timeout: float, supervise: bool = True) -> list[Event]:
        """Dispatch, wait up to ``timeout`` for worker events, supervise. Returns the events."""
        self._dispatch()
        conns = {w.conn: w for w in self.workers if w.conn is not None and not w.conn.closed}
        events: list[Event] = []
        for conn in wait(list(conns), timeout=timeout) if conns else []:
            w = conns[conn]
            try:
                while conn.poll():
                    events.append(self._on_event(w, conn.recv()))
            except (EOFError, OSError):
                conn.close()
        if supervise:
            events.extend(self._supervise())
        self._dispatch()
        return events

    def _on_event(self, w: WorkerHandle, event: Event) -> Event:
        w.last_heartbeat = time.time()
        kind = event["type"]
        if kind == "worker_state":
            w.state = event["state"]
        elif (
            kind == "model_load"
            and event.get("phase") == "done"
            and event.get("model") == "classifier"
        ):
            w.models_loaded = True
        elif kind == "shard_done":
            self._finish(w, event["job"], event["shard"])
        elif (
            kind == "error"
            and event.get("shard") is not None
            and not event.get("fatal")
            and not event.get("disk_full")
        ):
            shard = self._finish(w, event["job"], event["shard"])
            if shard is not None:
                self._retry(shard, event.get("message", "error"))
        self.emit(event)
        if kind == "error" and event.get("disk_full"):
            raise DiskFullError(str(event.get("message")))  # every retry would hit the same disk
        if kind == "error" and event.get("fatal"):
            raise WorkerFailure(
                f"worker {w.n} ({w.slot.label}) cannot run: {event.get('message')}; "
                f"see logs/worker-{w.n}.log"
            )
        return event

    def _finish(self, w: WorkerHandle, job: str, index: int) -> Shard | None:
        for shard in list(w.assigned):
            if shard.job == job and shard.index == index:
                w.assigned.remove(shard)
                return shard
        return None

    def _retry(self, shard: Shard, reason: str) -> None:
        n = self.attempts[shard.key] = self.attempts.get(shard.key, 0) + 1
        if n >= self.policy.max_shard_attempts:
            first = shard.frames[0].id if shard.frames else "?"
            raise WorkerFailure(
                f"shard {shard.key} (frames from {first}) failed {n} times; last error: {reason}"
            )
        self.submit(shard, front=True)
        self.emit(
            make_event("shard_requeued", job=shard.job, shard=shard.index, attempt=n, reason=reason)
        )

    def _supervise(self) -> list[Event]:
        now = time.time()
        out = []
        for w in self.workers:
            if w.retired or w.stopping or w.process is None:
                continue
            if not w.alive:
                code = w.process.exitcode
                out += self._recover(w, f"exited with {_describe_exit(code)}")
            elif now - w.last_heartbeat > self.policy.hang_timeout_s:
                _kill(w.process)
                w.process.join(timeout=5)
                out += self._recover(
                    w, f"hung: no heartbeat for {now - w.last_heartbeat:.0f} s, killed"
                )
        if not self.live_workers():
            raise WorkerFailure(
                f"every worker failed past its restart limit ({self.policy.max_restarts} "
                f"restarts each); last: {self.last_failure}"
            )
        return out

    def _recover(self, w: WorkerHandle, reason: str, counted: bool = True) -> list[Event]:
        """Requeue the dead worker's shards and respawn it, or retire it past its restart limit.
        A restart that is not ``counted`` (the worker was not at fault) never retires it."""
        events = [
            make_event(
                "worker_state", worker=w.n, state="crashed", device=w.slot.label, reason=reason
            )
        ]
        self.emit(events[-1])
        if w.conn is not None:
            w.conn.close()
        retire = counted and w.restarts >= self.policy.max_restarts
        if retire:
            w.retired = True
            self.last_failure = f"worker {w.n} ({w.slot.label}) {reason}; see logs/worker-{w.n}.log"
            events.append(
                make_event(
                    "error",
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
            make_event(
                "worker_state",
                worker=w.n,
                state="restarting",
                device=w.slot.label,
                generation=w.generation,
                reason=reason,
            )
        )
        self.emit(events[-1])
        self._spawn(w)
        return events


def _kill(process: Any) -> None:
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(process.pid, signal.SIGKILL)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
