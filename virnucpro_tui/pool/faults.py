"""Fault injection for tests and drills, from ``$VIRNUCPRO_TUI_FAULTS`` (JSON).

Keys (all optional): ``oom_batches`` (first N multi-item batches raise CUDA OOM),
``sleep_per_batch_s`` (slow every batch down), ``exit_on_shard`` (the worker dies with exit
code 9 when it starts its Nth shard), ``hang_on_shard`` (the worker stops itself with
SIGSTOP when it starts its Nth shard, 1-based), ``fail_load`` (model loading raises),
``workers`` (restrict to these worker numbers), ``generations`` (restrict to these restart
generations; default [0], so a respawned worker runs clean).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field

ENV = "VIRNUCPRO_TUI_FAULTS"


class InjectedOOM(RuntimeError):
    def __init__(self) -> None:
        super().__init__("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault)")


@dataclass
class FaultPlan:
    oom_batches: int = 0
    sleep_per_batch_s: float = 0.0
    hang_on_shard: int = 0
    exit_on_shard: int = 0
    fail_load: bool = False
    workers: list[int] | None = None
    generations: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def from_env(cls, worker: int, generation: int) -> FaultPlan:
        raw = os.environ.get(ENV)
        if not raw:
            return cls()
        plan = cls(**json.loads(raw))
        if (plan.workers is not None and worker not in plan.workers) or generation not in plan.generations:
            return cls()
        return plan

    @property
    def active(self) -> bool:
        return bool(self.oom_batches or self.sleep_per_batch_s or self.hang_on_shard or self.exit_on_shard
                    or self.fail_load)

    def before_batch(self, _model: str, batch_size: int) -> None:
        if self.sleep_per_batch_s:
            time.sleep(self.sleep_per_batch_s)
        if self.oom_batches and batch_size > 1:
            self.oom_batches -= 1
            raise InjectedOOM()

    def on_shard_start(self, shard_number: int) -> None:
        if self.exit_on_shard and shard_number == self.exit_on_shard:
            os._exit(9)
        if self.hang_on_shard and shard_number == self.hang_on_shard:
            os.kill(os.getpid(), signal.SIGSTOP)
