"""RunView: the state of a run folded from its event stream.

Both front ends (the Textual app and the headless reporter) and ``attach`` read a run through
this one model, so what they show always agrees. Pure Python, no Textual.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from virnucpro_tui.pool import events as ev


@dataclass
class ModelView:
    state: str = "not loaded"  # not loaded, loading, compiling, loaded, error
    seconds: float | None = None
    warmup_seconds: float | None = None  # torch.compile + warm-up batches (GPU fast path)
    bytes_on_device: int | None = None
    dtype: str | None = None


@dataclass
class WorkerView:
    worker: int
    device: str = ""
    kind: str = "cpu"
    uuid: str | None = None
    state: ev.WorkerState = ev.WorkerState.STARTING
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
    # added for the dashboard: per-model speed of the last finished stage, the last problem
    esm_rate: float | None = None  # ESM-2 proteins/s over the last shard's ESM stage
    dnabert_rate: float | None = None  # DNABERT-S frames/s over the last shard's DNABERT stage
    stage_end_s: float = 0.0  # shard-relative seconds at which the previous stage ended
    synced_stages: bool = False  # the worker reports GPU-synchronised ``stage_seconds``
    last_error: str | None = None


@dataclass
class JobView:
    name: str
    input: str = ""
    status: ev.JobStatus = ev.JobStatus.QUEUED
    records: int = 0
    chunks_total: int = 0
    chunks_prepared: int = 0
    frames_prepared: int = 0
    duplicate_frames: int = 0  # prepared frames that copy an identical frame's result
    prepared: bool = False
    frames_done: int = 0
    out_dir: str = ""
    result: ev.JobDone | None = None
    added: bool = False  # added while the run was going (UI `a`)

    @property
    def frames_total(self) -> int | None:
        """The frames to compute (duplicates are copied, not computed): exact once preparation
        is done, else extrapolated from the chunks prepared so far; every frame once done."""
        if self.status == ev.JobStatus.DONE:
            return self.frames_done
        computed = self.frames_prepared - self.duplicate_frames
        if self.prepared:
            return computed
        if self.chunks_prepared and self.chunks_total:
            return round(computed / self.chunks_prepared * self.chunks_total)
        return None

    @property
    def fraction(self) -> float:
        if self.status == ev.JobStatus.DONE:
            return 1.0
        total = self.frames_total
        return min(self.frames_done / total, 1.0) if total else 0.0


class RunView:
    def __init__(self, log_size: int = 500) -> None:
        self.out = ""
        self.demo = False
        self.notice: str | None = None
        self.status = ev.RunStatus.STARTING
        self.exit_code: int | None = None
        self.resumable = True  # run_done says whether running the same command again continues
        self.started: float | None = None
        self.finished: float | None = None
        self.paused = False
        self.resumed = False
        self.run_started: ev.RunStarted | None = None  # the settings the run announced
        self.workers: dict[int, WorkerView] = {}
        self.jobs: dict[str, JobView] = {}
        self.log: deque[ev.Event] = deque(maxlen=log_size)
        self.virus_frames = 0
        self.others_frames = 0
        self.histogram = [0] * ev.HISTOGRAM_BINS
        self.top_frames: list[tuple[str, float]] = []
        self.top_sequences: list[tuple[str, float, str]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._done_marks: deque[tuple[float, int]] = deque(maxlen=2000)
        self._partial: dict[int, int] = {}
        self.last_ts = 0.0
        self.events_seen = 0

    # -- folding ------------------------------------------------------------------------------
    def apply(self, event: ev.Event) -> None:
        self.events_seen += 1
        self.last_ts = event.ts
        if not event.TELEMETRY:
            self.log.append(event)
        if event.worker is not None:
            w = self._worker(event.worker)
            w.last_event = event.ts
            self._apply_worker(w, event)
        self._apply_run(event)

    def _worker(self, n: int) -> WorkerView:
        w = self.workers.get(n)
        if w is None:
            w = self.workers[n] = WorkerView(n)
        return w

    def _job(self, name: str | None) -> JobView | None:
        if name is None:
            return None
        return self.jobs.setdefault(name, JobView(name))

    def _apply_worker(self, w: WorkerView, e: ev.Event) -> None:
        """What a worker's own event changes in its panel."""
        if isinstance(e, ev.WorkerStateChanged):
            self._on_worker_state(w, e)
        elif isinstance(e, ev.ModelLoad):
            self._on_model_load(w, e)
        elif isinstance(e, ev.Progress):
            w.job, w.shard, w.stage = e.job, e.shard, e.stage
            w.shard_done, w.shard_total = e.frames_done, e.frames_total
            self._partial[w.worker] = w.shard_done
            _note_stage_rate(w, e)
        elif isinstance(e, ev.ShardDone):
            w.shards_done += 1
            w.frames_done += e.frames
            w.shard_done = w.shard_total = e.frames
            if e.seconds:
                w.throughput.append(e.frames / max(e.seconds, 1e-9))
            self._partial.pop(w.worker, None)
        elif isinstance(e, ev.GpuMemory):
            w.memory = e
        elif isinstance(e, ev.GpuTelemetry):
            w.telemetry = e
        elif isinstance(e, ev.CacheCleared):
            w.cache_clears += 1
            w.last_freed = e.bytes_freed
        elif isinstance(e, ev.OutOfMemory):
            w.ooms += 1
        elif isinstance(e, ev.ErrorEvent):
            w.last_error = e.message

    def _apply_run(self, e: ev.Event) -> None:
        """What an event changes in the run, its jobs and its results."""
        if isinstance(e, ev.RunStarted):
            self._on_run_started(e)
        elif isinstance(e, ev.RunDone):
            self.status, self.exit_code, self.finished = e.status, e.exit_code, e.ts
            self.resumable = e.resumable
        elif isinstance(e, ev.RunPaused | ev.RunResumed):
            self.paused = isinstance(e, ev.RunPaused)
        elif isinstance(e, ev.ShardDone):
            self._on_shard_done(e)
        elif isinstance(e, ev.ShardSkipped):
            job = self._job(e.job)
            if job is not None:
                job.frames_done += e.frames
        elif isinstance(e, ev.ErrorEvent):
            who = f"worker {e.worker}: " if e.worker is not None else ""
            self.errors.append(f"{who}{e.message}")
        elif isinstance(e, ev.WarningEvent):
            self.warnings.append(e.message)
        elif isinstance(e, ev.JobStarted | ev.JobAdded | ev.JobPrepared | ev.JobDone):
            job = self._job(e.job)
            if job is not None:
                self._on_job_event(job, e)

    def _on_run_started(self, e: ev.RunStarted) -> None:
        self.out, self.demo, self.notice = e.out, e.demo, e.notice
        self.status, self.started, self.resumed = ev.RunStatus.RUNNING, e.ts, e.resumed
        self.run_started = e
        for info in e.workers:
            w = self._worker(info.worker)
            w.kind, w.uuid = info.kind, info.uuid
            w.device = f"GPU {info.index} · {info.name}" if w.kind == "cuda" else "CPU"
        for name in e.jobs:
            self._job(name)

    def _on_worker_state(self, w: WorkerView, e: ev.WorkerStateChanged) -> None:
        w.state = e.state
        w.pid = e.pid or w.pid
        if e.device and w.kind == "cpu" and not w.device:
            w.device = e.device
        if e.state in (ev.WorkerState.CRASHED, ev.WorkerState.RESTARTING) and e.reason:
            w.last_error = f"{e.state}: {e.reason}"
        if e.state == ev.WorkerState.RESTARTING:
            w.restarts += 1
            w.generation = ev.present(e.generation) or w.generation
            w.models = {m: ModelView() for m in ev.MODELS}
            w.shard = None
        if e.state in (ev.WorkerState.IDLE, ev.WorkerState.CRASHED, ev.WorkerState.STOPPED):
            self._partial.pop(w.worker, None)
            w.shard = None if e.state != ev.WorkerState.IDLE else w.shard

    def _on_model_load(self, w: WorkerView, e: ev.ModelLoad) -> None:
        m = w.models.setdefault(e.model, ModelView())
        m.state = {
            ev.ModelPhase.START: "loading",
            ev.ModelPhase.WARMUP_START: "compiling",
            ev.ModelPhase.WARMUP_DONE: "compiling",
            ev.ModelPhase.DONE: "loaded",
            ev.ModelPhase.ERROR: "error",
        }[e.phase]
        if e.phase == ev.ModelPhase.WARMUP_DONE:
            m.warmup_seconds = ev.present(e.seconds)
        if e.phase == ev.ModelPhase.DONE:
            m.seconds, m.dtype = ev.present(e.seconds), ev.present(e.dtype)
            m.bytes_on_device = ev.present(e.bytes_on_device)
        if e.phase == ev.ModelPhase.ERROR:
            self.errors.append(
                f"worker {w.worker}: {e.model} failed to load: {ev.present(e.message)}"
            )

    def _on_shard_done(self, e: ev.ShardDone) -> None:
        job = self._job(e.job)
        if job is not None:
            job.frames_done += e.frames
        self._done_marks.append((e.ts, e.frames))
        self.virus_frames += e.virus_frames
        self.others_frames += e.others_frames
        for i, c in enumerate(e.histogram[: ev.HISTOGRAM_BINS]):
            self.histogram[i] += c
        self.top_frames = sorted([*self.top_frames, *e.top], key=lambda t: -t[1])[:10]

    def _on_job_event(
        self, job: JobView, e: ev.JobStarted | ev.JobAdded | ev.JobPrepared | ev.JobDone
    ) -> None:
        if isinstance(e, ev.JobStarted):
            job.status, job.input, job.out_dir = ev.JobStatus.RUNNING, e.input, e.out_dir
            job.records, job.chunks_total = e.records, e.chunks_total
        elif isinstance(e, ev.JobAdded):
            job.input, job.records, job.chunks_total = e.input, e.records, e.chunks_total
            job.added = True
        elif isinstance(e, ev.JobPrepared):
            job.chunks_prepared, job.frames_prepared = e.chunks_prepared, e.frames_prepared
            job.duplicate_frames, job.prepared = e.duplicate_frames, e.done
        else:
            job.status, job.result = ev.JobStatus.DONE, e
            job.frames_done = e.frames
            job.frames_prepared, job.prepared = e.frames, True
            job.duplicate_frames = e.duplicate_frames
            self.top_sequences = sorted(
                [*self.top_sequences, *e.top_sequences], key=lambda t: -t[1]
            )[:10]

    # -- derived figures ----------------------------------------------------------------------
    @property
    def frames_done(self) -> int:
        return sum(j.frames_done for j in self.jobs.values())

    @property
    def frames_in_flight(self) -> int:
        return sum(self._partial.values())

    @property
    def frames_total(self) -> int | None:
        totals = [j.frames_total for j in self.jobs.values()]
        if any(t is None for t in totals):
            return None
        return sum(t for t in totals if t is not None)

    def throughput(self, window_s: float = 30.0, now: float | None = None) -> float:
        """Frames per second over the last ``window_s`` seconds of finished shards."""
        now = now if now is not None else (self.finished or time.time())
        recent = [(t, n) for t, n in self._done_marks if now - t <= window_s]
        if not recent:
            return 0.0
        span = (
            max(now - recent[0][0], 1e-9)
            if len(recent) > 1
            else max(now - (self.started or now), 1.0)
        )
        span = min(max(span, 1.0), window_s)
        return sum(n for _, n in recent) / span

    def eta_seconds(self, now: float | None = None) -> float | None:
        total, rate = self.frames_total, self.throughput(now=now)
        if total is None or rate <= 0:
            return None
        return max(total - self.frames_done - self.frames_in_flight, 0) / rate

    def proteins_per_s(self) -> float:
        """ESM-2 speed summed over the live workers (each worker's last shard), proteins/s."""
        return sum(w.esm_rate or 0.0 for w in self.workers.values() if w.state.live)

    def average_throughput(self) -> float:
        """Frames per second over the whole run so far (what a finished run reports)."""
        elapsed = self.elapsed()
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or now or time.time()) - self.started


def _note_stage_rate(w: WorkerView, e: ev.Progress) -> None:
    """Per-model speed from the stage's GPU-synchronised ``stage_seconds``; for event logs
    without it, from the progress event that closes a stage (batches counted when queued)."""
    synced = ev.present(e.stage_seconds)
    if synced is not None:
        w.synced_stages = True
        total = e.stage_total if isinstance(e.stage_total, int) else 0
        if e.stage in ("dnabert", "esm") and total and synced > 0:
            if e.stage == "esm":
                w.esm_rate = total / synced
            else:
                w.dnabert_rate = total / synced
        return
    if w.synced_stages:
        return
    if e.stage == "start":
        w.stage_end_s = 0.0
    if e.stage not in ("dnabert", "esm") or not e.closes_stage:
        return
    total = e.stage_total if isinstance(e.stage_total, int) else 0
    span = e.seconds - (w.stage_end_s if e.stage == "esm" else 0.0)
    w.stage_end_s = e.seconds
    if span > 0:
        if e.stage == "esm":
            w.esm_rate = total / span
        else:
            w.dnabert_rate = total / span
