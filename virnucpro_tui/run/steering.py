"""How a front end steers a run: typed commands (like the pool's ``transport.Command``) that the
front end's thread puts in a queue and the orchestrator's loop takes out between polls."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias


@dataclass(frozen=True)
class StopRun:
    abandon: bool  # False: finish the shards in flight first


@dataclass(frozen=True)
class SetPaused:
    paused: bool


@dataclass(frozen=True)
class ClearCaches:
    pass


@dataclass(frozen=True)
class AddInput:
    path: Path


SteeringCommand: TypeAlias = StopRun | SetPaused | ClearCaches | AddInput


class Steering:
    """The commands waiting for the orchestrator, and the stop flag that preparation and
    assembly check between records (set at once by ``request_stop``, from any thread)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[SteeringCommand] = queue.Queue()
        self.stop_requested = threading.Event()

    def put(self, command: SteeringCommand) -> None:
        self._queue.put(command)
        if isinstance(command, StopRun):
            self.stop_requested.set()  # after the command: whoever sees the flag finds it

    def pending(self) -> Iterator[SteeringCommand]:
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def empty(self) -> bool:
        return self._queue.empty()
