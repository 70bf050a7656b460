"""Fault injection for tests and drills, from ``$VIRNUCPRO_TUI_FAULTS``: a JSON object of
``FaultPlan``'s keys, all optional, each explained at its field. Worker keys apply to the workers
that ``workers`` and ``generations`` name; orchestrator keys are read by the main process (those
two do not apply). Shard numbers count a worker's shards from 1.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ENV = "VIRNUCPRO_TUI_FAULTS"
_HELD: list[object] = []  # what a fault keeps alive in the worker


class InjectedOOM(RuntimeError):
    def __init__(self) -> None:
        super().__init__("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault)")


def injected_disk_full(path: str | Path | None = None) -> OSError:
    """The OSError a full disk raises (``filename`` is often unknown for buffered writes)."""
    if path is None:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@dataclass
class FaultPlan:
    # -- worker keys
    oom_batches: int = 0  # the first N multi-item batches raise CUDA OOM
    sleep_per_batch_s: float = 0.0  # slow every batch down
    hang_on_shard: int = 0  # the worker stops itself with SIGSTOP as it starts its Nth shard
    exit_on_shard: int = 0  # the worker dies with exit code 9 as it starts its Nth shard
    fail_on_shard: int = 0  # the worker's Nth shard fails with an error (retried elsewhere)
    fail_load: bool = False  # model loading raises
    slow_start_s: float = 0.0  # setting up torch takes this much longer (a busy node's imports)
    enospc_on_shard_write: int = 0  # writing the Nth shard's result fails with ENOSPC
    # the worker creates a multiprocessing lock, a named semaphore registered with the run's
    # resource tracker, as tqdm does under ``torch.compile``
    named_semaphore: bool = False
    # -- orchestrator keys
    # assembly pauses this long once the temporary output files hold their first record (a
    # stop request ends the pause)
    assembly_delay_s: float = 0.0
    enospc_in_assembly: bool = False  # writing the final outputs fails after their first record
    enospc_in_features: bool = False  # writing the saved features fails after their first rows
    # -- which workers the worker keys apply to
    workers: list[int] | None = None  # these worker numbers (None: all)
    generations: list[int] = field(default_factory=lambda: [0])  # a respawned worker runs clean

    @classmethod
    def from_env(cls, worker: int, generation: int) -> FaultPlan:
        """The plan for one worker process (empty when it is not targeted)."""
        return cls.for_orchestrator().for_worker(worker, generation)

    def for_worker(self, worker: int, generation: int) -> FaultPlan:
        """This plan for one worker and restart generation (empty when it is not targeted)."""
        if (self.workers is not None and worker not in self.workers) or (
            generation not in self.generations
        ):
            return FaultPlan()
        return self

    @classmethod
    def for_orchestrator(cls) -> FaultPlan:
        """The plan as written, for the main process."""
        raw = os.environ.get(ENV)
        return cls(**json.loads(raw)) if raw else cls()

    @property
    def active(self) -> bool:
        return bool(
            self.oom_batches
            or self.sleep_per_batch_s
            or self.hang_on_shard
            or self.exit_on_shard
            or self.fail_on_shard
            or self.fail_load
        )

    def before_batch(self, _model: str, batch_size: int) -> None:
        if self.sleep_per_batch_s:
            time.sleep(self.sleep_per_batch_s)
        if self.oom_batches and batch_size > 1:
            self.oom_batches -= 1
            raise InjectedOOM()

    def on_start(self) -> None:
        if self.slow_start_s:
            time.sleep(self.slow_start_s)

    def on_shard_start(self, shard_number: int) -> None:
        if self.named_semaphore and shard_number == 1:
            import multiprocessing

            _HELD.append(multiprocessing.RLock())  # kept for the process's life, like tqdm's
        if self.exit_on_shard and shard_number == self.exit_on_shard:
            os._exit(9)
        if self.hang_on_shard and shard_number == self.hang_on_shard:
            os.kill(os.getpid(), signal.SIGSTOP)

    def before_shard_write(self, shard_number: int) -> None:
        if self.enospc_on_shard_write and shard_number == self.enospc_on_shard_write:
            raise injected_disk_full()

    def in_assembly(self, records_written: int, stop: threading.Event) -> None:
        """Called as assembly writes the final outputs; may pause or fail like a full disk."""
        if records_written != 1:
            return
        if self.assembly_delay_s:
            stop.wait(self.assembly_delay_s)
        if self.enospc_in_assembly:
            raise injected_disk_full()

    def in_features(self, rows_written: int) -> None:
        """Called as assembly writes the saved features; may fail like a full disk."""
        if self.enospc_in_features and rows_written:
            raise injected_disk_full()
