"""One worker actor seen from the driver: the ``WorkerTransport`` the pool speaks, over the
actor's mailbox calls and the calls it watches (its long-polled events, its ``run``)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from virnucpro_tui.pool.ray.actor import EVENT_WAIT_S, sigkill
from virnucpro_tui.pool.ray.compat import actor_unavailable_error, describe_death, died_with_node
from virnucpro_tui.pool.transport import (
    ClearCache,
    Command,
    Recall,
    RunShard,
    Stop,
    WorkerMessage,
)


class ActorTransport:
    """One worker actor, seen from the driver: its mailbox calls and the calls to watch."""

    def __init__(self, ray: Any, actor: Any, local_node: str) -> None:
        self.ray = ray
        self.actor = actor
        self.local_node = local_node
        self.info_ref: Any = _call(actor, "info", "control")
        self.run_ref: Any = _call(actor, "run", "run")
        self.events_ref: Any = _call(actor, "events", "events", EVENT_WAIT_S)
        self.recall_ref: Any = None
        self._exit_reason: str | None = None
        self.reported = False  # it has sent something: placed, and its worker runs
        self.node_lost = False  # it died with its node

    @property
    def alive(self) -> bool:
        return self.actor is not None and self._exit_reason is None

    @property
    def ready(self) -> bool:
        return self.reported

    @property
    def host_lost(self) -> bool:
        return self.node_lost

    def watched(self) -> list[Any]:
        """The outstanding calls whose completion means news."""
        return [r for r in (self.events_ref, self.recall_ref, self.run_ref) if r is not None]

    def send(self, command: Command) -> bool:
        if not self.alive:
            return False
        if isinstance(command, RunShard):
            _call(self.actor, "submit", "mailbox", command.shard)
        elif isinstance(command, Recall):
            self.recall_ref = _call(self.actor, "recall", "mailbox")
        elif isinstance(command, Stop):
            _call(self.actor, "stop", "mailbox")
        elif isinstance(command, ClearCache):
            _call(self.actor, "clear_cache", "control", command.reason)
        return True

    def receive(self) -> list[WorkerMessage]:
        refs = self.watched() if self.alive else []
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        messages: list[WorkerMessage] = []
        if self.events_ref is not None and self.events_ref in ready:  # its events first
            messages += self._take_events()
        if self.recall_ref is not None and self.recall_ref in ready and self.alive:
            messages += self._take_recall()
        if self.run_ref is not None and self.run_ref in ready and self.alive:
            messages += self._take_exit()
        self.reported = self.reported or bool(messages)
        return messages

    def _take_events(self) -> list[WorkerMessage]:
        ray_exc = self.ray.exceptions
        unavailable = actor_unavailable_error(self.ray)
        ref, self.events_ref = self.events_ref, None
        try:
            batch: list[WorkerMessage] = self.ray.get(ref)
        except unavailable:
            time.sleep(0.1)  # transient (network, node under load or going): ask again soon;
            batch = []  # Ray reports the death if it lasts, else the heartbeat timeout decides
        except ray_exc.RayActorError as exc:
            self._died(exc)
            return []
        if self.alive:
            self.events_ref = _call(self.actor, "events", "events", EVENT_WAIT_S)
        return batch

    def _take_recall(self) -> list[WorkerMessage]:
        ref, self.recall_ref = self.recall_ref, None
        try:
            return [self.ray.get(ref)]
        except self.ray.exceptions.RayError:
            return []  # the actor is dying: its exit says why

    def _take_exit(self) -> list[WorkerMessage]:
        """The worker loop ended: deliver its last events, then let the actor go."""
        ray_exc = self.ray.exceptions
        try:
            reason = f"exited with code {self.ray.get(self.run_ref)}"
        except actor_unavailable_error(self.ray):
            self.run_ref = None  # unreachable, maybe with its node: its events call will tell
            return []
        except ray_exc.RayActorError as exc:
            self._died(exc)
            return []
        except ray_exc.RayError as exc:
            reason = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
        messages = self._drain()
        self._exit_reason = self._exit_reason or reason
        self._terminate()
        return messages

    def _died(self, exc: BaseException) -> None:
        self._exit_reason = describe_death(exc)
        self.node_lost = died_with_node(exc) or not self._node_alive()

    def _node_alive(self) -> bool:
        """Whether the node the actor ran on is still in the cluster (True when unknown)."""
        try:
            node_id = self.ray.get(self.info_ref, timeout=0)["node_id"]
            return any(n["NodeID"] == node_id and n["Alive"] for n in self.ray.nodes())
        except Exception:  # noqa: BLE001 - it never answered, or the GCS did not: assume so
            return True

    def _drain(self) -> list[WorkerMessage]:
        last = _call(self.actor, "events", "events", 0.0)
        refs = [r for r in (self.events_ref, last) if r is not None]
        self.events_ref = None
        messages: list[WorkerMessage] = []
        for ref in refs:
            try:
                messages += self.ray.get(ref, timeout=EVENT_WAIT_S + 3)
            except Exception:  # noqa: BLE001 - the actor is going anyway
                continue
        return messages

    def exit_reason(self) -> str | None:
        return self._exit_reason

    def kill(self) -> None:
        """SIGKILL the actor's process (a stopped process ignores Ray), then the actor."""
        self._reap()
        self._terminate()

    def close(self) -> None:
        self._terminate()

    def _terminate(self) -> None:
        if self.actor is None:
            return
        with contextlib.suppress(Exception):
            self.ray.kill(self.actor, no_restart=True)
        if self._exit_reason is None:
            self._exit_reason = "stopped"
        self.run_ref = self.events_ref = self.recall_ref = None

    def _reap(self) -> None:
        try:  # one that never reported in may never have been placed: do not wait for it
            info = self.ray.get(self.info_ref, timeout=2 if self.reported else 0)
        except Exception:  # noqa: BLE001 - it never answered: nothing to reap
            return
        if info["node_id"] == self.local_node:
            sigkill(info["pid"])
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(info["node_id"], soft=False)
        self.ray.remote(num_cpus=0, scheduling_strategy=strategy)(sigkill).remote(info["pid"])


def _call(actor: Any, method: str, group: str, *args: Any) -> Any:
    return getattr(actor, method).options(concurrency_group=group).remote(*args)
