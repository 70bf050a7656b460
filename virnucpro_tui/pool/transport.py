"""How the pool reaches its workers: the ``Backend`` and ``WorkerTransport`` protocols, and the
messages that cross them (docs/architecture.md#the-pool-one-supervisor-two-transports).

The pool (``pool.py``) owns the queue, prefetch, retries, hang detection, restarts, pause and
stop. A backend places workers and waits for them; a transport carries one worker's shards and
commands to it and its messages back. Three backends exist: worker processes over pipes
(``local.py``), Ray actors (``ray/``) and an in-memory fake for tests
(``virnucpro_tui/testing/fake_backend.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.events import Event
from virnucpro_tui.pool.layout import RunLayout

if TYPE_CHECKING:
    from virnucpro_tui.pool.worker_config import WorkerConfig

ShardKey: TypeAlias = str  # ``Shard.key``: job and index


def shard_key(job: str | None, index: int) -> ShardKey:
    """The key of shard ``index`` of ``job`` (as named by an event)."""
    return Shard(job or "", index).key


# -- pool -> worker -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunShard:
    """Score this shard after those already sent."""

    shard: Shard


@dataclass(frozen=True)
class ClearCache:
    """Empty the device cache now (``reason``: periodic, manual, ...)."""

    reason: str


@dataclass(frozen=True)
class Recall:
    """Give back every shard not started yet (answered by ``Recalled``)."""


@dataclass(frozen=True)
class Stop:
    """Finish the shards already sent, then exit."""


Command: TypeAlias = RunShard | ClearCache | Recall | Stop


# -- worker -> pool ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recalled:
    """The answer to ``Recall``: the shards given back, and the one the worker runs, if any."""

    shards: tuple[ShardKey, ...]
    running: ShardKey | None


WorkerMessage: TypeAlias = Event | Recalled


class WorkerTransport(Protocol):
    """One worker's channel. Sends never block on the worker and never raise for a dead one."""

    @property
    def alive(self) -> bool:
        """The worker can still take commands (not known dead)."""
        ...

    @property
    def ready(self) -> bool:
        """The worker has reported in, so it takes shards. A Ray actor waiting for a node with
        room is not ready: it holds no shard meanwhile."""
        ...

    @property
    def host_lost(self) -> bool:
        """It ended because the machine it ran on was lost (a Ray node died), through no fault
        of its own: its restart does not count against the restart limit."""
        ...

    def send(self, command: Command) -> bool:
        """Deliver a command; False when the channel is broken."""
        ...

    def receive(self) -> list[WorkerMessage]:
        """What the worker sent since the last call, without waiting."""
        ...

    def exit_reason(self) -> str | None:
        """Why the worker ended ("exited with signal SIGKILL"), or None while it lives."""
        ...

    def kill(self) -> None:
        """End the worker now, even a stopped (SIGSTOP) or hung one."""
        ...

    def close(self) -> None:
        """Release the channel (the worker is dead, or being given up)."""
        ...


T = TypeVar("T", bound=WorkerTransport)


class Backend(Protocol[T]):
    """Where workers run: it finds the slots, starts one worker per slot, waits for messages."""

    name: str

    def now(self) -> float:
        """The time supervision goes by (seconds; only differences count)."""
        ...

    def resolve_slots(self, spec: str) -> list[DeviceSlot]:
        """The worker slots for ``--devices SPEC``."""
        ...

    def open(self, slots: Sequence[DeviceSlot], layout: RunLayout) -> list[str]:
        """Get ready to start workers for ``slots`` (checks capacity; may raise InputError).
        Returns warnings for the user (e.g. a cluster without authentication)."""
        ...

    def spawn(self, config: WorkerConfig) -> T:
        """Start one worker."""
        ...

    def wait(self, transports: Sequence[T], timeout: float) -> None:
        """Return when one of ``transports`` may have messages, or after ``timeout`` seconds."""
        ...
