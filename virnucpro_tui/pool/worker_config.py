"""What one worker needs to start: its slot, the run directory's layout, the models and how to run
them (``WorkerConfig``, pickled to the process or actor), and the environment it sets before torch
is imported. Both sides read it: the pool and its backends, and the worker (``worker.py``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.layout import RunLayout


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker uses its device and reports (``run --clear-cache-every``,
    ``--memory-fraction``, ``--alloc-conf``); the one place their defaults live."""

    heartbeat_s: float = 1.0
    memory_every_s: float = 2.0
    clear_cache_every: int = 10  # shards between cache clears (0: never)
    memory_fraction: float = 0.9  # cap on the worker's share of its GPU's memory
    alloc_conf: str = "expandable_segments:True"  # PYTORCH_CUDA_ALLOC_CONF


@dataclass
class WorkerConfig:
    """Everything one worker process (or actor) needs, pickled to it when it starts."""

    slot: DeviceSlot
    layout: RunLayout
    files: ModelFiles
    engine: EngineSettings = field(default_factory=EngineSettings)
    settings: WorkerSettings = field(default_factory=WorkerSettings)
    torch_threads: int | None = None
    generation: int = 0
    parent_pid: int = 0

    @property
    def log_path(self) -> Path:
        return self.layout.worker_log(self.slot.worker)


def worker_environment(cfg: WorkerConfig) -> dict[str, str]:
    """Variables a worker needs before torch is imported."""
    return slot_environment(cfg.slot, cfg.settings, cfg.torch_threads)


def slot_environment(
    slot: DeviceSlot, settings: WorkerSettings, torch_threads: int | None
) -> dict[str, str]:
    """The environment of ``slot``'s worker: known before its config (a standby starts in it)."""
    env = {
        "PYTORCH_CUDA_ALLOC_CONF": settings.alloc_conf,
        "PYTORCH_ALLOC_CONF": settings.alloc_conf,
        "PYTHONUNBUFFERED": "1",
    }
    env["CUDA_VISIBLE_DEVICES"] = slot.uuid if slot.kind == "cuda" and slot.uuid else ""
    if torch_threads:
        env["OMP_NUM_THREADS"] = str(torch_threads)
    if slot.kind == "cpu":  # CPU workers share the cores: no extra tokenizer threads
        env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def cpu_threads(slot: DeviceSlot, slots: int) -> int | None:
    """Threads of a CPU worker: the cores shared between the ``slots`` workers (None on a GPU)."""
    return max(1, (os.cpu_count() or 1) // max(1, slots)) if slot.kind == "cpu" else None


def slot_environments(slots: list[DeviceSlot], settings: WorkerSettings) -> list[dict[str, str]]:
    """The environment of each slot's worker, as ``RunConfig.worker_config`` will start it."""
    return [slot_environment(s, settings, cpu_threads(s, len(slots))) for s in slots]


__all__ = [
    "WorkerConfig",
    "WorkerSettings",
    "cpu_threads",
    "slot_environment",
    "slot_environments",
    "worker_environment",
]
