"""Fault injection for tests and drills, from ``$VIRNUCPRO_TUI_FAULTS`` (JSON).

Worker keys (all optional): ``oom_batches`` (first N multi-item batches raise CUDA OOM),
``sleep_per_batch_s`` (slow every batch down), ``fail_on_shard`` (the worker's Nth shard fails
with an error, and is retried elsewhere), ``exit_on_shard`` (the worker dies with exit
code 9 when it starts its Nth shard), ``hang_on_shard`` (the worker stops itself with
SIGSTOP when it starts its Nth shard, 1-based), ``fail_load`` (model loading raises),
``enospc_on_shard_write`` (writing the worker's Nth shard result fails with ENOSPC, "No space
left on device"), ``named_semaphore`` (the worker creates a multiprocessing lock, a named
semaphore registered with the run's resource tracker, as tqdm does under ``torch.compile``),
``workers`` (restrict to these worker numbers), ``generations`` (restrict to
these restart generations; default [0], so a respawned worker runs clean).

Orchestrator keys (read by the main process; ``workers`` and ``generations`` do not apply):
``assembly_delay_s`` (assembly pauses this long once the temporary output files hold their
first record; a stop request ends the pause), ``enospc_in_assembly`` (writing the final outputs
fails with ENOSPC after their first record), ``enospc_in_features`` (writing the saved features
fails with ENOSPC once their first rows are written).
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
    oom_batches: int = 0
    sleep_per_batch_s: float = 0.0
    hang_on_shard: int = 0
    exit_on_shard: int = 0
    fail_on_shard: int = 0
    fail_load: bool = False
    enospc_on_shard_write: int = 0
    named_semaphore: bool = False
    assembly_delay_s: float = 0.0
    enospc_in_assembly: bool = False
    enospc_in_features: bool = False
    workers: list[int] | None = None
    generations: list[int] = field(default_factory=lambda: [0])

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
