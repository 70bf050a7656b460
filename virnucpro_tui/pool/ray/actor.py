"""Inside a Ray actor: the local pool's ``Worker`` behind Ray method calls, and the outbox its
events wait in for the driver's long poll (docs/architecture.md#the-pool-one-supervisor-two-transports)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from dataclasses import replace
from typing import Any

import msgspec

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.pool.events import Event, WorkerStateChanged
from virnucpro_tui.pool.inbox import ShardInbox
from virnucpro_tui.pool.ray.placement import placed_slot
from virnucpro_tui.pool.transport import Recalled, WorkerMessage
from virnucpro_tui.pool.worker import Worker, redirect_output
from virnucpro_tui.pool.worker_config import WorkerConfig, worker_environment

CONCURRENCY_GROUPS = {"run": 1, "mailbox": 1, "events": 1, "control": 1}
EVENT_WAIT_S = 2.0  # longest an events() call waits for the first event
EVENT_SETTLE_S = 0.02  # once one arrives, how long to let a burst gather
BUFFER_LIMIT = 20_000  # past this, an actor drops its telemetry until it is drained
FORWARDED_ENV_PREFIX = "VIRNUCPRO_TUI_"  # e.g. fault injection reaches the actors too


class EventBuffer:
    """The actor's outbox: the ``Worker`` puts events in, ``drain`` long-polls them out.

    The pool asks again only once it has a reply, so a new ``drain`` call acknowledges
    everything the previous ones returned; ``wait_delivered`` waits for that."""

    def __init__(self, limit: int = BUFFER_LIMIT) -> None:
        self.limit = limit
        self._events: list[WorkerMessage] = []
        self._cv = threading.Condition()
        self._taken = 0  # non-empty batches handed out
        self._acked = 0  # of those, how many the pool has confirmed by asking again

    def put(self, event: WorkerMessage) -> None:
        with self._cv:
            if len(self._events) >= self.limit and isinstance(event, Event) and event.TELEMETRY:
                return  # nobody is draining: keep what matters, drop telemetry
            self._events.append(event)
            self._cv.notify_all()

    def drain(self, wait_s: float, settle_s: float = EVENT_SETTLE_S) -> list[WorkerMessage]:
        with self._cv:
            self._acked = self._taken
            self._cv.notify_all()
            if not self._cv.wait_for(lambda: bool(self._events), timeout=wait_s):
                return []
        if settle_s:
            time.sleep(settle_s)
        with self._cv:
            out, self._events = self._events, []
            self._taken += 1
        return out

    def wait_delivered(self, timeout: float) -> bool:
        """Wait until every event so far has reached the pool (or ``timeout``)."""
        with self._cv:
            return self._cv.wait_for(
                lambda: not self._events and self._acked == self._taken, timeout=timeout
            )


def actor_environment(cfg: WorkerConfig) -> dict[str, str]:
    """The variables an actor process needs before torch is imported (its runtime env).

    A GPU actor's ``CUDA_VISIBLE_DEVICES`` is Ray's to set (``num_gpus=1``); a CPU actor's is
    empty. ``VIRNUCPRO_TUI_*`` variables of the driver are passed on."""
    env = worker_environment(cfg)
    if cfg.slot.kind == "cuda":
        env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update({k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)})
    return env


class WorkerActor:
    """The body of a Ray actor: the local pool's ``Worker`` behind Ray method calls. Its
    ``worker_state`` events name the Ray node (``node``) and host (``host``) it runs on."""

    def __init__(self, cfg: WorkerConfig) -> None:
        redirect_output(cfg.log_path)  # nothing from a worker reaches a terminal
        os.environ.update(actor_environment(cfg))  # already set by the runtime env
        with contextlib.suppress(ValueError):  # the orchestrator decides when we stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        import ray

        self.host = socket.gethostname()
        self.node_id = ray.get_runtime_context().get_node_id()
        cfg = replace(cfg, slot=placed_slot(cfg.slot, list(ray.get_gpu_ids()), self.host))
        print(
            f"worker {cfg.slot.worker} generation {cfg.generation} pid {os.getpid()} on {cfg.slot.label} "
            f"(Ray actor, node {self.node_id[:12]})",
            flush=True,
        )
        self.outbox = EventBuffer()
        # a shard starts only once the events before it have reached the pool (or after a
        # second), so a shard_done is not lost when the next shard kills the actor
        self.inbox = ShardInbox(before_take=lambda: self.outbox.wait_delivered(1.0))
        self.worker = Worker(cfg, self._send)

    def _send(self, message: WorkerMessage) -> None:
        """Out to the pool; a ``worker_state`` names the node and host it comes from."""
        if isinstance(message, WorkerStateChanged):
            message = msgspec.structs.replace(message, node=self.node_id, host=self.host)
        self.outbox.put(message)

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "node_id": self.node_id,
            "host": self.host,
            "device": self.worker.cfg.slot.label,
        }

    def run(self) -> int:
        self.worker.start()
        code = self.worker.serve(self.inbox)
        print(f"worker loop ended with code {code}", flush=True)
        return code

    def submit(self, shard: Shard) -> None:
        self.inbox.put(shard)

    def recall(self) -> Recalled:
        return self.worker.recall(self.inbox)

    def stop(self) -> None:
        self.inbox.stop()

    def clear_cache(self, reason: str) -> None:
        if self.worker.engine is not None:  # not before the worker has started
            self.worker.clear_cache(reason)

    def events(self, wait_s: float) -> list[WorkerMessage]:
        return self.outbox.drain(wait_s)


def sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
