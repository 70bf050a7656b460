"""A worker as the views see it: its state, models, memory, current shard and speeds, folded
from its own events (``RunView`` hands each worker's events to ``WorkerView.apply``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from virnucpro_tui.pool import events as ev

STAGES = ("dnabert", "esm")  # the model stages whose speed the panels show


@dataclass
class ModelView:
    state: str = "not loaded"  # not loaded, loading, warming up, loaded, error
    since: float | None = None  # when the current phase began (event time)
    seconds: float | None = None  # reading and moving to the device
    warmup_seconds: float | None = None  # compilation and warm-up batches
    compiling: bool = False  # the warm-up includes torch.compile
    cached: bool = False  # ... which loads the kernels an earlier run compiled
    compiling_beside: bool = False  # runs uncompiled while a process beside compiles it
    bytes_on_device: int | None = None
    dtype: str | None = None

    @property
    def busy(self) -> bool:
        """Loading or warming up: a phase whose elapsed time the views show."""
        return self.state in ("loading", "warming up")


@dataclass
class WorkerView:
    worker: int
    device: str = ""
    kind: str = "cpu"
    uuid: str | None = None
    state: ev.WorkerState = ev.WorkerState.STARTING
    gone: bool = False  # the run's process died: this worker is gone with it
    pid: int | None = None
    generation: int = 0
    models: dict[str, ModelView] = field(
        default_factory=lambda: {m: ModelView() for m in ev.MODELS}
    )
    memory: ev.GpuMemory | None = None  # the latest reading
    telemetry: ev.GpuTelemetry | None = None  # the latest NVML reading (GPU workers)
    job: str | None = None
    shard: int | None = None
    shard_done: int = 0
    shard_total: int = 0
    stage: str | None = None
    frames_done: int = 0
    shards_done: int = 0
    cache_clears: int = 0
    last_freed: int | None = None
    ooms: int = 0
    restarts: int = 0
    throughput: deque[float] = field(default_factory=lambda: deque(maxlen=60))  # frames/s per shard
    last_event: float = 0.0
    # per-model speed of the last measured stage (docs/events.md: stage_seconds)
    esm_rate: float | None = None  # ESM-2 proteins/s
    dnabert_rate: float | None = None  # DNABERT-S frames/s
    synced_stages: bool = False  # the worker reports device-synchronised stage seconds
    stage_end_s: float = 0.0  # shard-relative seconds at which the previous stage ended
    last_error: str | None = None

    @property
    def loading_model(self) -> tuple[str, ModelView] | None:
        """The model being loaded or warmed up now, if any."""
        return next(((n, m) for n, m in self.models.items() if m.busy), None)


def note_stage_rate(w: WorkerView, e: ev.Progress) -> None:
    """Per-model speed from the progress event that closes a stage: from its device-synchronised
    ``stage_seconds`` when the worker reports them; without them only on a CPU worker (whose
    timings are synchronous anyway); a GPU's unsynchronised times would charge one stage's work
    to the next, so they are never shown as speeds."""
    if e.stage == "start":
        w.stage_end_s = 0.0
    if e.stage not in STAGES or not e.closes_stage:
        return
    total = e.stage_total if isinstance(e.stage_total, int) else 0
    synced = ev.present(e.stage_seconds)
    span = e.seconds - (w.stage_end_s if e.stage == "esm" else 0.0)
    w.stage_end_s = e.seconds
    if synced is not None:
        w.synced_stages = True
        span = synced
    elif w.synced_stages or w.kind == "cuda":
        return
    _set_stage_rate(w, e.stage, total, span)


def note_shard_stage_rates(w: WorkerView, e: ev.ShardDone) -> None:
    """Per-model speeds from a finished shard's device-synchronised stage seconds."""
    seconds = ev.present(e.stage_seconds)
    if not seconds:
        return
    w.synced_stages = True
    for stage in STAGES:
        if stage in seconds:
            _set_stage_rate(w, stage, e.frames, seconds[stage])


def _set_stage_rate(w: WorkerView, stage: str, items: int, seconds: float) -> None:
    if seconds <= 0 or items <= 0:
        return
    if stage == "esm":
        w.esm_rate = items / seconds
    else:
        w.dnabert_rate = items / seconds
