"""What one worker needs to start: its slot, the run directory's layout, the models and how to run
them (``WorkerConfig``, pickled to the process or actor), and the environment it sets before torch
is imported. Both sides read it: the pool and its backends, and the worker (``worker.py``)."""

from __future__ import annotations

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
    env = {
        "PYTORCH_CUDA_ALLOC_CONF": cfg.settings.alloc_conf,
        "PYTORCH_ALLOC_CONF": cfg.settings.alloc_conf,
        "PYTHONUNBUFFERED": "1",
    }
    env["CUDA_VISIBLE_DEVICES"] = cfg.slot.uuid if cfg.slot.kind == "cuda" and cfg.slot.uuid else ""
    if cfg.torch_threads:
        env["OMP_NUM_THREADS"] = str(cfg.torch_threads)
    if cfg.slot.kind == "cpu":  # CPU workers share the cores: no extra tokenizer threads
        env["TOKENIZERS_PARALLELISM"] = "false"
    return env


__all__ = ["WorkerConfig", "WorkerSettings", "worker_environment"]
