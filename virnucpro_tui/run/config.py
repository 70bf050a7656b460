"""A run's settings (``RunConfig``): what the command line (cli/run_options.py), the bench and the
tests give the orchestrator, and the ``WorkerConfig`` each worker is started with."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro_tui.core.fasta import InputScan, scan_input
from virnucpro_tui.errors import InputError
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.pool import PoolPolicy
from virnucpro_tui.pool.worker_config import WorkerConfig, WorkerSettings, cpu_threads
from virnucpro_tui.run.hooks import JobFinishedHook

DEMO_NOTICE = "Demo models with random weights: scores are NOT biological predictions."


@dataclass
class RunConfig:
    inputs: list[Path]
    out: Path
    models: ModelFiles
    demo: bool = False
    devices: str = "auto"
    engine: EngineSettings = field(default_factory=EngineSettings)
    shard_size: int | None = None
    persistent: bool = True
    restart: bool = False
    backend: str = "local"
    policy: PoolPolicy = field(default_factory=PoolPolicy)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    telemetry_every_s: float = 2.0
    dedup: bool = True  # identical frames computed once (--no-dedup turns it off)
    save_features: bool = False  # --save-features
    features_format: str = "pt"  # --features-format: pt or safetensors
    on_job_finished: JobFinishedHook | None = None  # the report (run --no-report: None)
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    scans: list[InputScan] | None = None  # validation already done by the caller

    @property
    def chunk_length(self) -> int:
        return self.engine.chunk_length

    @property
    def effective_shard_size(self) -> int:
        return self.shard_size or (128 if self.demo else 2048)

    def scan_inputs(self) -> list[InputScan]:
        """Every input checked (by the caller already, or now), before any work starts."""
        if not self.inputs:
            raise InputError("no input files given")
        if self.scans is not None and len(self.scans) == len(self.inputs):
            return self.scans
        return [scan_input(p, self.chunk_length) for p in self.inputs]

    def worker_config(
        self, layout: RunLayout, slots: int, slot: DeviceSlot, generation: int
    ) -> WorkerConfig:
        """What the worker of ``slot`` starts with; CPU workers share the cores between them."""
        threads = cpu_threads(slot, slots)
        return WorkerConfig(
            slot=slot,
            layout=layout,
            files=self.models,
            engine=self.engine,
            settings=self.worker,
            torch_threads=threads,
            generation=generation,
        )
