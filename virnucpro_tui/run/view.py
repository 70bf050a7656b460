"""RunView: the state of a run folded from its event stream.

Both front ends (the Textual app and the headless reporter) and ``attach`` read a run through
this one model, so what they show always agrees. Pure Python, no Textual.

Three rules keep it true (docs/architecture.md#events-and-front-ends):

- **One run in a view.** ``run_started`` opens a segment of the history (a resumed run is a new
  segment): workers, rates, ETA and pause fold only the current segment. Finished work is a
  ledger of verified shards (``shard_done`` and ``shard_skipped``, keyed by job and shard), so a
  shard done before a resume and skipped after it counts once.
- **Liveness is a fact.** Events cannot say that the run's process died: the front end that
  knows (``attach``, from the lock record) calls ``process_gone``; the run then shows as dead,
  its workers gone, with no ETA, until a new segment starts.
- **Totals are estimates until exact.** A job's frames are exact once prepared; before, they are
  extrapolated from what was prepared per chunk once that is a sample (``JobView.sampled``), and
  a job not yet started from its chunk count at the frames per chunk of such samples
  (``frames_estimate``); before any sample the total is unknown, never guessed.
- **Rates come from finished shards** (``work_rate.py``): each worker's over its shards of the
  last minute, on a clock that stops while a pause holds the run idle; the run's is their sum.
"""

from __future__ import annotations

import time
from collections import deque

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.job_view import JobView, Totals
from virnucpro_tui.run.work_rate import ShardRates
from virnucpro_tui.run.worker_view import (
    ModelView,
    WorkerView,
    note_shard_stage_rates,
    note_stage_rate,
)

__all__ = ["JobView", "ModelView", "RunView", "Totals", "WorkerView"]


class RunView:
    def __init__(self, log_size: int = 500) -> None:
        self.out = ""
        self.demo = False
        self.notice: str | None = None
        self.status = ev.RunStatus.STARTING
        self.exit_code: int | None = None
        self.resumable = True  # run_done says whether running the same command again continues
        self.started: float | None = None  # the current segment's start
        self.finished: float | None = None
        self.paused = False
        self.shards_finishing = 0  # while paused: started shards that have not finished yet
        self.resumed = False
        self.segments = 0  # run_started events seen: a resume opens a new segment
        self.dead_since: float | None = None  # process_gone: the process died unfinished
        self.pid: int | None = None
        self.resume_command: str | None = None  # set by the front end that knows it
        self.run_started: ev.RunStarted | None = None  # the settings the run announced
        self.workers: dict[int, WorkerView] = {}
        self.jobs: dict[str, JobView] = {}
        self.log: deque[ev.Event] = deque(maxlen=log_size)
        self.logged = 0  # events ever appended to the log (the log keeps the newest)
        self.virus_frames = 0
        self.others_frames = 0
        self.histogram = [0] * ev.HISTOGRAM_BINS
        self._scored: dict[tuple[str | None, int], ev.ShardDone] = {}
        self._earlier: dict[tuple[str | None, int], ev.ShardDone] = {}  # see ``restore``
        self._top_frames: dict[str, float] = {}
        self.top_sequences: list[tuple[str, float, str]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._partial: dict[int, int] = {}
        self._work = 0  # frames scored in this segment (finished shards)
        self.rates = ShardRates()  # this segment's finished shards, on the active clock
        self.last_ts = 0.0
        self.events_seen = 0

    # -- facts from outside the events -------------------------------------------------------
    def restore(self, shards: list[ev.ShardDone]) -> None:
        """What earlier runs in this run directory scored (a live view of a resumed run starts
        without their events): each shard's scores count once this run verifies the shard
        again (``shard_skipped``), so what shows is what the outputs will hold."""
        for e in shards:
            self._earlier[(e.job, e.shard)] = e

    def process_gone(self, at: float | None = None) -> bool:
        """The run's process is gone (not running on this host any more). Without its
        ``run_done`` the run died unfinished: it shows as dead, its workers as gone. It died
        ``at``, or else after its last event: every front end says the same elapsed time. False
        when the run had finished or was known dead already."""
        if self.status.finished or self.dead_since is not None:
            return False
        self.dead_since = at if at is not None else (self.last_ts or None)
        self.paused = False
        self._partial.clear()
        for w in self.workers.values():
            w.gone, w.shard = True, None
        return True

    @property
    def dead(self) -> bool:
        """The run's process died without finishing (``process_gone``, no ``run_done``)."""
        return self.dead_since is not None and not self.status.finished

    @property
    def live(self) -> bool:
        """The run is going: started, not finished, its process not gone."""
        return self.status == ev.RunStatus.RUNNING and not self.dead

    # -- folding ------------------------------------------------------------------------------
    def apply(self, event: ev.Event) -> None:
        self.events_seen += 1
        self.last_ts = event.ts
        if not event.TELEMETRY:
            self.log.append(event)
            self.logged += 1
        if isinstance(event, ev.RunStarted):
            self._on_run_started(event)  # first: it opens the segment the rest folds into
            return
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
            note_stage_rate(w, e)
            if e.stage == "start":
                self.rates.start(w.worker, e.ts)
        elif isinstance(e, ev.ShardDone):
            w.shards_done += 1
            w.frames_done += e.frames
            w.shard_done = w.shard_total = e.frames
            if e.seconds:
                w.throughput.append(e.frames / max(e.seconds, 1e-9))
            note_shard_stage_rates(w, e)
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
        if isinstance(e, ev.RunDone):
            self.status, self.exit_code, self.finished = e.status, e.exit_code, e.ts
            self.resumable = e.resumable
            self.paused = False
        elif isinstance(e, ev.RunPaused):
            self.paused, self.shards_finishing = True, ev.present(e.shards_running) or 0
            if not self.shards_finishing:
                self.rates.clock.halt(e.ts)  # nothing runs: the active clock stops
        elif isinstance(e, ev.RunResumed):
            self.paused, self.shards_finishing = False, 0
            self.rates.clock.resume(e.ts)
        elif isinstance(e, ev.ShardDone):
            self._on_shard_done(e)
        elif isinstance(e, ev.ShardSkipped):
            job = self._job(e.job)
            if job is not None:
                job.shards[e.shard] = e.frames
            earlier = self._earlier.get((e.job, e.shard))
            if (e.job, e.shard) not in self._scored and earlier is not None:
                self._record_scores(earlier)  # verified again: its scores count
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
        """A run's process starts: a new segment. Its live state starts afresh; the ledger of
        verified shards and the results of earlier segments stay."""
        self.segments += 1
        self.out, self.demo, self.notice = e.out, e.demo, e.notice
        self.status, self.started, self.resumed = ev.RunStatus.RUNNING, e.ts, e.resumed
        self.finished = self.exit_code = self.dead_since = None
        self.paused, self.shards_finishing, self.resumable = False, 0, True
        self.pid, self.run_started = e.pid, e
        self.workers.clear()
        self._partial.clear()
        self._work, self.rates = 0, ShardRates()
        for info in e.workers:
            w = self._worker(info.worker)
            w.kind, w.uuid = info.kind, info.uuid
            w.device = f"GPU {info.index} · {info.name}" if w.kind == "cuda" else "CPU"
        for name in e.jobs:
            self._job(name)
        sizes = {s.job: s for s in e.sizes}
        for job in self.jobs.values():
            if job.frames_total is not None:
                job.earlier_total = job.frames_total
            job.status = ev.JobStatus.DONE if job.result is not None else ev.JobStatus.QUEUED
            job.chunks_prepared = job.frames_prepared = job.bytes_read = job.duplicate_frames = 0
            job.prepared = job.result is not None
            if (size := sizes.get(job.name)) is not None:
                job.records, job.chunks_total, job.bytes_total = (
                    size.records,
                    size.chunks,
                    size.bytes,
                )

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
        if e.state == ev.WorkerState.BUSY and (shard := ev.present(e.shard)) is not None:
            w.job, w.shard = e.job, shard
            w.shard_done, w.shard_total = 0, ev.present(e.frames) or 0
            self.rates.start(w.worker, e.ts)
        if e.state in (ev.WorkerState.IDLE, ev.WorkerState.CRASHED, ev.WorkerState.STOPPED):
            self._partial.pop(w.worker, None)
            w.shard = None if e.state != ev.WorkerState.IDLE else w.shard

    def _on_model_load(self, w: WorkerView, e: ev.ModelLoad) -> None:
        m = w.models.setdefault(e.model, ModelView())
        if e.phase == ev.ModelPhase.START:
            m.state, m.since = "loading", e.ts
        elif e.phase == ev.ModelPhase.WARMUP_START:
            m.state, m.since, m.compiling = "warming up", e.ts, bool(ev.present(e.compile))
            m.cached = bool(ev.present(e.cached))
        elif e.phase == ev.ModelPhase.WARMUP_DONE:
            m.warmup_seconds = ev.present(e.seconds)
            m.since = e.ts  # the rest of the load (if any) until done
        elif e.phase == ev.ModelPhase.DONE:
            m.state, m.since = "loaded", None
            m.seconds, m.dtype = ev.present(e.seconds), ev.present(e.dtype)
            m.bytes_on_device = ev.present(e.bytes_on_device)
            if m.warmup_seconds is None:
                m.warmup_seconds = ev.present(e.compile_seconds)
        elif e.phase in (ev.ModelPhase.COMPILE_BESIDE_START, ev.ModelPhase.COMPILE_BESIDE_DONE):
            m.compiling_beside = e.phase == ev.ModelPhase.COMPILE_BESIDE_START
        elif e.phase == ev.ModelPhase.ERROR:
            m.state, m.since = "error", None
            self.errors.append(
                f"worker {w.worker}: {e.model} failed to load: {ev.present(e.message)}"
            )

    def _on_shard_done(self, e: ev.ShardDone) -> None:
        job = self._job(e.job)
        if job is not None:
            job.shards[e.shard] = e.frames
        self._work += e.frames
        if e.worker is not None:
            self.rates.add(e.worker, e.ts, e.seconds, e.frames)
        if self.paused and self.shards_finishing:
            self.shards_finishing -= 1  # one of those still running at the pause has finished
            if not self.shards_finishing:
                self.rates.clock.halt(e.ts)  # the last one: nothing runs, the clock stops
        self._record_scores(e)

    def _record_scores(self, e: ev.ShardDone) -> None:
        """A verified shard's scores in the results (once per shard: a recomputed one replaces)."""
        old = self._scored.get((e.job, e.shard))  # recomputed (a corrupt result): replace it
        if old is not None:
            self._add_scores(old, -1)
        self._scored[(e.job, e.shard)] = e
        self._add_scores(e, 1)
        for frame, score in e.top:
            self._top_frames[frame] = max(score, self._top_frames.get(frame, 0.0))
        if len(self._top_frames) > 100:
            self._top_frames = dict(self._best_frames(10))

    def _add_scores(self, e: ev.ShardDone, sign: int) -> None:
        self.virus_frames += sign * e.virus_frames
        self.others_frames += sign * e.others_frames
        for i, c in enumerate(e.histogram[: ev.HISTOGRAM_BINS]):
            self.histogram[i] += sign * c

    def _on_job_event(
        self, job: JobView, e: ev.JobStarted | ev.JobAdded | ev.JobPrepared | ev.JobDone
    ) -> None:
        if isinstance(e, ev.JobStarted):
            job.status, job.input, job.out_dir = ev.JobStatus.RUNNING, e.input, e.out_dir
            job.records, job.chunks_total = e.records, e.chunks_total
            job.result, job.prepared = None, False
        elif isinstance(e, ev.JobAdded):
            job.input, job.records, job.chunks_total = e.input, e.records, e.chunks_total
            job.added = True
        elif isinstance(e, ev.JobPrepared):
            job.chunks_prepared, job.frames_prepared = e.chunks_prepared, e.frames_prepared
            job.bytes_read = ev.present(e.bytes_read) or job.bytes_read
            job.bytes_total = ev.present(e.bytes_total) or job.bytes_total
            job.duplicate_frames, job.prepared = e.duplicate_frames, e.done
        else:
            job.status, job.result = ev.JobStatus.DONE, e
            job.frames_prepared, job.prepared = e.frames, True
            job.duplicate_frames = e.duplicate_frames
            others = [t for t in self.top_sequences if t[0] not in {s[0] for s in e.top_sequences}]
            self.top_sequences = sorted([*others, *e.top_sequences], key=_call_then_score)[:10]

    # -- derived figures ----------------------------------------------------------------------
    @property
    def top_frames(self) -> list[tuple[str, float]]:
        return self._best_frames(10)

    def _best_frames(self, n: int) -> list[tuple[str, float]]:
        return sorted(self._top_frames.items(), key=lambda t: -t[1])[:n]

    @property
    def frames_done(self) -> int:
        return sum(j.frames_done for j in self.jobs.values())

    @property
    def frames_in_flight(self) -> int:
        return sum(self._partial.values())

    @property
    def frames_total(self) -> int | None:
        """The exact total, once every job is prepared (else None: see ``totals``)."""
        totals = [j.frames_total for j in self.jobs.values()]
        if not totals or any(t is None for t in totals):  # no job yet: nothing is sized
            return None
        return sum(t for t in totals if t is not None)

    def frames_per_chunk(self) -> float | None:
        """Frames per chunk over everything prepared so far, once that is a large enough sample
        (``JobView.sampled``; None before)."""
        chunks = frames = 0
        for j in self.jobs.values():
            if j.prepared and j.chunks_total:
                chunks, frames = chunks + j.chunks_total, frames + (j.frames_total or 0)
            elif j.sampled:
                chunks, frames = chunks + j.chunks_prepared, frames + j.frames_to_compute
        return frames / chunks if chunks else None

    def totals(self) -> Totals:
        """Frames done and the total: exact, estimated (``exact`` False), or None when some job
        cannot be estimated yet."""
        exact = self.frames_total
        if exact is not None:
            return Totals(self.frames_done, exact, True)
        ratio = self.frames_per_chunk()
        estimates = [j.frames_estimate(ratio) for j in self.jobs.values()]
        known = [e for e in estimates if e is not None]
        if not known:
            return Totals(self.frames_done, None, False, len(estimates))
        floor = self.frames_done + self.frames_in_flight + self._unfinished()
        return Totals(self.frames_done, max(sum(known), floor), False, len(estimates) - len(known))

    def fraction_read(self) -> float | None:
        """The share of the inputs' bytes that preparation has read (None when unknown)."""
        sizes = [(j.bytes_total, j.fraction_read) for j in self.jobs.values()]
        whole = sum(size for size, _ in sizes)
        if not whole:
            return None
        return sum(size * (read or 0.0) for size, read in sizes) / whole

    def _unfinished(self) -> int:
        """Frames of the shards in flight that are not scored yet."""
        return sum(
            max(w.shard_total - w.shard_done, 0)
            for w in self.workers.values()
            if w.worker in self._partial
        )

    def throughput(self, now: float | None = None) -> float:
        """Frames per second: the sum of the workers' rates over their shards finished in the
        last minute of active time (``work_rate.py``: paused time left out). Zero unless live."""
        if not self.live:
            return 0.0
        return self.rates.total(now if now is not None else time.time())

    def worker_rate(self, worker: int, now: float | None = None) -> float:
        """One worker's share of ``throughput`` (what its panel shows)."""
        if not self.live:
            return 0.0
        return self.rates.worker_rate(worker, now if now is not None else time.time())

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left at the smoothed rate; None when unknown (no estimate, no rate, not live)
        and never zero while frames remain."""
        if not self.live or self.paused:
            return None
        total, rate = self.totals().total, self.throughput(now=now)
        if total is None or rate <= 0:
            return None
        left = max(total - self.frames_done - self.frames_in_flight, self._unfinished())
        return max(left / rate, 1.0)  # the last shard is still being written: not zero

    def proteins_per_s(self) -> float:
        """ESM-2 speed summed over the live workers (each worker's last shard), proteins/s."""
        if not self.live:
            return 0.0
        return sum(w.esm_rate or 0.0 for w in self.workers.values() if w.state.live)

    def average_throughput(self) -> float:
        """Frames per second over the whole segment, paused time left out (what a finished run
        reports)."""
        if self.started is None:
            return 0.0
        end = self.finished or self.dead_since or time.time()
        elapsed = self.rates.clock.at(end) - self.started
        return self._work / elapsed if elapsed > 0 else 0.0

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.finished or self.dead_since or now or time.time()
        return max(end - self.started, 0.0)


def _call_then_score(top: tuple[str, float, str]) -> tuple[bool, float]:
    """Sequences called virus first, then by max P(virus) (docs/outputs.md#the-call)."""
    return top[2] != "virus", -top[1]
