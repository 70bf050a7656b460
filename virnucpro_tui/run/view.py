"""RunView: the state of a run folded from its event stream.

Both front ends (the Textual app and the headless reporter) and ``attach`` read a run through
this one model, so what they show always agrees. Pure Python, no Textual.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from virnucpro_tui.pool.events import Event

HISTOGRAM_BINS = 20
MODELS = ("dnabert", "esm", "classifier")


@dataclass
class ModelView:
    state: str = "not loaded"  # not loaded, loading, loaded, error
    seconds: float | None = None
    bytes_on_device: int | None = None
    dtype: str | None = None


@dataclass
class WorkerView:
    worker: int
    device: str = ""
    kind: str = "cpu"
    uuid: str | None = None
    state: str = "starting"
    pid: int | None = None
    generation: int = 0
    models: dict[str, ModelView] = field(default_factory=lambda: {m: ModelView() for m in MODELS})
    memory: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
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
    status: str = "queued"
    records: int = 0
    chunks_total: int = 0
    chunks_prepared: int = 0
    frames_prepared: int = 0
    prepared: bool = False
    frames_done: int = 0
    out_dir: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    added: bool = False  # added while the run was going (UI `a`)

    @property
    def frames_total(self) -> int | None:
        """Exact once preparation is done, else extrapolated from the chunks prepared so far."""
        if self.prepared:
            return self.frames_prepared
        if self.chunks_prepared and self.chunks_total:
            return round(self.frames_prepared / self.chunks_prepared * self.chunks_total)
        return None

    @property
    def fraction(self) -> float:
        if self.status == "done":
            return 1.0
        total = self.frames_total
        return min(self.frames_done / total, 1.0) if total else 0.0


class RunView:
    def __init__(self, log_size: int = 500) -> None:
        self.out = ""
        self.demo = False
        self.notice: str | None = None
        self.status = "starting"
        self.exit_code: int | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.paused = False
        self.resumed = False
        self.settings: dict[str, Any] = {}
        self.workers: dict[int, WorkerView] = {}
        self.jobs: dict[str, JobView] = {}
        self.log: deque[Event] = deque(maxlen=log_size)
        self.virus_frames = 0
        self.others_frames = 0
        self.histogram = [0] * HISTOGRAM_BINS
        self.top_frames: list[tuple[str, float]] = []
        self.top_sequences: list[tuple[str, float, str]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._done_marks: deque[tuple[float, int]] = deque(maxlen=2000)
        self._partial: dict[int, int] = {}
        self.last_ts = 0.0
        self.events_seen = 0

    # -- folding ------------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        self.events_seen += 1
        self.last_ts = event.get("ts", self.last_ts)
        if event["type"] not in ("heartbeat", "gpu_memory", "gpu_telemetry", "progress"):
            self.log.append(event)
        handler = getattr(self, f"_on_{event['type']}", None)
        if handler is not None:
            handler(event)

    def _worker(self, event: Event) -> WorkerView | None:
        n = event.get("worker")
        if n is None:
            return None
        w = self.workers.get(n)
        if w is None:
            w = self.workers[n] = WorkerView(n)
        w.last_event = event.get("ts", 0.0)
        return w

    def _job(self, name: str | None) -> JobView | None:
        if name is None:
            return None
        return self.jobs.setdefault(name, JobView(name))

    def _on_run_started(self, e: Event) -> None:
        self.out, self.demo, self.notice = e.get("out", ""), bool(e.get("demo")), e.get("notice")
        self.status, self.started, self.resumed = "running", e["ts"], bool(e.get("resumed"))
        self.settings = {
            k: e.get(k)
            for k in ("chunk_length", "shard_size", "precision", "backend", "persistent")
        }
        for info in e.get("workers", []):
            w = self.workers.setdefault(info["worker"], WorkerView(info["worker"]))
            w.kind, w.uuid = info.get("kind", "cpu"), info.get("uuid")
            w.device = info.get("name") if w.kind == "cuda" else "CPU"
            if w.kind == "cuda":
                w.device = f"GPU {info.get('index')} · {info.get('name')}"
        for name in e.get("jobs", []):
            self._job(name)

    def _on_run_done(self, e: Event) -> None:
        self.status, self.exit_code, self.finished = (
            e.get("status", "done"),
            e.get("exit_code"),
            e["ts"],
        )

    def _on_run_paused(self, _e: Event) -> None:
        self.paused = True

    def _on_run_resumed(self, _e: Event) -> None:
        self.paused = False

    def _on_worker_state(self, e: Event) -> None:
        w = self._worker(e)
        if w is None:
            return
        w.state = e["state"]
        w.pid = e.get("pid", w.pid)
        if e.get("device") and w.kind == "cpu" and not w.device:
            w.device = e["device"]
        if e["state"] in ("crashed", "restarting") and e.get("reason"):
            w.last_error = f"{e['state']}: {e['reason']}"
        if e["state"] == "restarting":
            w.restarts += 1
            w.generation = e.get("generation", w.generation)
            w.models = {m: ModelView() for m in MODELS}
            w.shard = None
        if e["state"] in ("idle", "crashed", "stopped"):
            self._partial.pop(w.worker, None)
            w.shard = None if e["state"] != "idle" else w.shard

    def _on_model_load(self, e: Event) -> None:
        w = self._worker(e)
        if w is None:
            return
        m = w.models.setdefault(e["model"], ModelView())
        phase = e.get("phase")
        m.state = {"start": "loading", "done": "loaded", "error": "error"}.get(phase, m.state)
        if phase == "done":
            m.seconds, m.bytes_on_device, m.dtype = (
                e.get("seconds"),
                e.get("bytes_on_device"),
                e.get("dtype"),
            )
        if phase == "error":
            self.errors.append(
                f"worker {w.worker}: {e['model']} failed to load: {e.get('message')}"
            )

    def _on_progress(self, e: Event) -> None:
        w = self._worker(e)
        if w is None:
            return
        w.job, w.shard, w.stage = e.get("job"), e.get("shard"), e.get("stage")
        w.shard_done, w.shard_total = e.get("frames_done", 0), e.get("frames_total", 0)
        self._partial[w.worker] = w.shard_done
        self._note_stage_rate(w, e)

    @staticmethod
    def _note_stage_rate(w: WorkerView, e: Event) -> None:
        """Per-model speed from the stage's GPU-synchronised ``stage_seconds``; for event logs
        without it, from the progress event that closes a stage (``stage_done == stage_total``)."""
        stage, seconds = e.get("stage"), e.get("seconds")
        total = e.get("stage_total")
        synced = e.get("stage_seconds")
        if synced is not None:
            w.synced_stages = True
            if stage in ("dnabert", "esm") and total and synced > 0:
                rate = total / synced
                w.esm_rate, w.dnabert_rate = (
                    (rate, w.dnabert_rate) if stage == "esm" else (w.esm_rate, rate)
                )
            return
        if w.synced_stages:  # batch events are counted when queued, not when computed
            return
        if stage == "start":
            w.stage_end_s = 0.0
        closes_stage = bool(total) and e.get("stage_done") == total
        if stage not in ("dnabert", "esm") or not closes_stage or seconds is None:
            return
        span = float(seconds) - (w.stage_end_s if stage == "esm" else 0.0)
        w.stage_end_s = float(seconds)
        if span > 0:
            rate = total / span
            if stage == "esm":
                w.esm_rate = rate
            else:
                w.dnabert_rate = rate

    def _on_shard_done(self, e: Event) -> None:
        w = self._worker(e)
        frames = int(e.get("frames", 0))
        if w is not None:
            w.shards_done += 1
            w.frames_done += frames
            w.shard_done = w.shard_total = frames
            if e.get("seconds"):
                w.throughput.append(frames / max(e["seconds"], 1e-9))
            self._partial.pop(w.worker, None)
        job = self._job(e.get("job"))
        if job is not None:
            job.frames_done += frames
        self._done_marks.append((e["ts"], frames))
        self.virus_frames += int(e.get("virus_frames", 0))
        self.others_frames += int(e.get("others_frames", 0))
        for i, c in enumerate(e.get("histogram", [])[:HISTOGRAM_BINS]):
            self.histogram[i] += int(c)
        self.top_frames = sorted(
            self.top_frames + [tuple(t) for t in e.get("top", [])], key=lambda t: -t[1]
        )[:10]

    def _on_shard_skipped(self, e: Event) -> None:
        job = self._job(e.get("job"))
        if job is not None:
            job.frames_done += int(e.get("frames", 0))

    def _on_gpu_memory(self, e: Event) -> None:
        w = self._worker(e)
        if w is not None:
            w.memory = {
                k: e.get(k) for k in ("kind", "allocated", "reserved", "peak", "free", "total")
            }

    def _on_gpu_telemetry(self, e: Event) -> None:
        w = self._worker(e)
        if w is not None:
            w.telemetry = {
                k: e.get(k)
                for k in (
                    "gpu_util",
                    "mem_util",
                    "memory_used",
                    "memory_total",
                    "temperature_c",
                    "power_w",
                )
            }

    def _on_cache_cleared(self, e: Event) -> None:
        w = self._worker(e)
        if w is not None:
            w.cache_clears += 1
            w.last_freed = e.get("bytes_freed")

    def _on_oom(self, e: Event) -> None:
        w = self._worker(e)
        if w is not None:
            w.ooms += 1

    def _on_error(self, e: Event) -> None:
        who = f"worker {e['worker']}: " if e.get("worker") is not None else ""
        self.errors.append(f"{who}{e.get('message')}")
        w = self._worker(e)
        if w is not None:
            w.last_error = str(e.get("message"))

    def _on_warning(self, e: Event) -> None:
        self.warnings.append(str(e.get("message")))

    def _on_job_started(self, e: Event) -> None:
        job = self._job(e["job"])
        if job is not None:
            job.status, job.input, job.out_dir = "running", e.get("input", ""), e.get("out_dir", "")
            job.records, job.chunks_total = e.get("records", 0), e.get("chunks_total", 0)

    def _on_job_added(self, e: Event) -> None:
        job = self._job(e["job"])
        if job is not None:
            job.input, job.records, job.chunks_total = (
                e.get("input", ""),
                e.get("records", 0),
                e.get("chunks_total", 0),
            )
            job.added = True

    def _on_job_prepared(self, e: Event) -> None:
        job = self._job(e["job"])
        if job is not None:
            job.chunks_prepared, job.frames_prepared = (
                e.get("chunks_prepared", 0),
                e.get("frames_prepared", 0),
            )
            job.prepared = bool(e.get("done"))

    def _on_job_done(self, e: Event) -> None:
        job = self._job(e["job"])
        if job is None:
            return
        job.status, job.result = "done", dict(e)
        job.frames_done = e.get("frames", job.frames_done)
        job.frames_prepared, job.prepared = e.get("frames", job.frames_prepared), True
        self.top_sequences = sorted(
            self.top_sequences + [tuple(t) for t in e.get("top_sequences", [])], key=lambda t: -t[1]
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
        live = ("idle", "loading", "busy", "clearing")
        return sum(w.esm_rate or 0.0 for w in self.workers.values() if w.state in live)

    def average_throughput(self) -> float:
        """Frames per second over the whole run so far (what a finished run reports)."""
        elapsed = self.elapsed()
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or now or time.time()) - self.started
