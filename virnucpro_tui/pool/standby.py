"""Worker interpreters started ahead of the pool (docs/architecture.md#worker-interpreters-start-early).

Importing torch and the engine takes a worker 1 to 4 seconds, and the main process spends about
as long checking the inputs and the model files before its pool may start. A standby is a
process started with exactly the environment of one slot's worker (its GPU, allocator settings
and threads), which imports what a worker needs and then waits on its pipe. When the pool
starts a worker for that slot, the standby gets the ``WorkerConfig`` and becomes the worker; it
touches no model file before then. A standby whose environment differs from the worker's, or
that died, is never used: the worker is spawned fresh, as without standbys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

Environment = dict[str, str]


@dataclass
class Standby:
    process: BaseProcess
    conn: Connection
    environment: Environment

    def close(self) -> None:
        """End it: it holds nothing yet (no config, no model, no file)."""
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class Standbys:
    """The standbys of one backend, each for one worker environment."""

    def __init__(self, start: Callable[[Environment], Standby]) -> None:
        self._start = start
        self._waiting: list[Standby] = []

    def start(self, environments: list[Environment]) -> None:
        self._waiting += [self._start(env) for env in environments]

    def take(self, environment: Environment) -> Standby | None:
        """A live standby started with exactly ``environment``, or None."""
        for standby in list(self._waiting):
            if standby.environment != environment:
                continue
            self._waiting.remove(standby)
            if standby.process.is_alive():
                return standby
            standby.close()
        return None

    def close(self) -> None:
        """Release every standby not taken (the run ended, or its slots differ)."""
        while self._waiting:
            with contextlib.suppress(OSError):
                self._waiting.pop().close()

    @property
    def waiting(self) -> tuple[Standby, ...]:
        """The standbys no worker has taken yet, oldest first."""
        return tuple(self._waiting)

    def __len__(self) -> int:
        return len(self._waiting)


__all__ = ["Environment", "Standby", "Standbys"]
