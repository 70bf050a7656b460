"""Every sentence the front ends say about a run, built from structured data: the lines of
notable events, the progress line, the summary, the event log's descriptions and the number
formats. The headless reporter, ``attach --no-ui`` and the dashboard all word a run through
this one module, so they say the same thing the same way (docs/architecture.md#front-ends).
"""

from __future__ import annotations

import time

from virnucpro_tui.core.outputs import REPORT_FILE
from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.view import ModelView, RunView, WorkerView

MODEL_LABELS = {"dnabert": "DNABERT-S", "esm": "ESM-2", "classifier": "MLP"}


# -- numbers ----------------------------------------------------------------------------------------
def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds + 0.5)
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def fmt_rate(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def fmt_clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "--:--:--"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def shards(count: int) -> str:
    return plural(count, "shard")


# -- the run's state --------------------------------------------------------------------------------
def run_state(view: RunView) -> str:
    """The run's state in one word: starting, running, paused, dead, complete, ..."""
    if view.dead:
        return "dead"
    if view.status.finished:
        return str(view.status)
    if view.paused:
        return "paused"
    return str(view.status)


def pause_text(view: RunView) -> str:
    """What a pause means now: no shard starts; how many of those started still finish."""
    if view.shards_finishing:
        return f"no new shard starts; {shards(view.shards_finishing)} still finishing"
    return "no new shard starts; none is running"


def dead_text(view: RunView) -> str:
    pid = f" (pid {view.pid})" if view.pid else ""
    return f"the run's process{pid} ended without finishing"


def worker_activity(w: WorkerView, now: float, live: bool) -> str:
    """What a worker is doing, in a few words: ``busy``, ``warming up ESM-2 00:42``, ``gone``."""
    if w.gone:
        return "gone"
    loading = w.loading_model
    if loading is not None and live:
        name, model = loading
        return f"{model_phase(model)} {MODEL_LABELS.get(name, name)}"
    return str(w.state)


def model_phase(model: ModelView) -> str:
    if model.state == "warming up":
        if model.compiling:
            return "loading compiled" if model.cached else "compiling"
        return "warming up"
    return str(model.state)


def phase_elapsed(model: ModelView, now: float) -> str:
    return fmt_duration(max(now - model.since, 0.0)) if model.since is not None else ""


def workers_text(view: RunView, now: float) -> str:
    """``2 busy``, ``1 busy, 1 compiling ESM-2 (00:42)``, ``2 gone``: grouped by activity."""
    groups: dict[str, list[WorkerView]] = {}
    for w in view.workers.values():
        groups.setdefault(worker_activity(w, now, view.live), []).append(w)
    parts = []
    for activity, members in sorted(groups.items()):
        loading = [m for w in members if (m := w.loading_model) is not None]
        elapsed = ""
        if loading and view.live and not members[0].gone:
            longest = min((m.since for _, m in loading if m.since is not None), default=None)
            elapsed = f" ({fmt_duration(now - longest)})" if longest is not None else ""
        parts.append(f"{len(members)} {activity}{elapsed}")
    return ", ".join(parts) or "starting"


def totals_text(view: RunView) -> str:
    """``47.0% 1,234/~2,626 frames`` (``~``: an estimate), or what is known before any total."""
    if not view.jobs:
        return "0 frames (starting)"
    totals = view.totals()
    if totals.total is not None and totals.fraction is not None:
        approx = "" if totals.exact else "~"
        unsized = f" + {plural(totals.unsized, 'job')} not sized yet" if totals.unsized else ""
        return (
            f"{100 * totals.fraction:5.1f}% {totals.done:,}/{approx}{totals.total:,} frames"
            + unsized
        )
    read = view.fraction_read()
    reading = f", {100 * read:.0f}% of the inputs read" if read is not None else ""
    return f"{totals.done:,} frames (sizing the inputs{reading})"


def eta_text(view: RunView, now: float) -> str:
    if view.dead:
        return "none (not running)"
    if view.status == ev.RunStatus.COMPLETE:
        return "done"
    if view.status.finished:
        return f"none ({view.status})"  # interrupted or failed: nothing more will run
    if view.paused:
        return "paused"
    unsized = view.totals().unsized
    eta = fmt_duration(view.eta_seconds(now))
    return f"{eta} + {plural(unsized, 'job')}" if unsized and eta != fmt_duration(None) else eta


def rate_text(view: RunView, now: float) -> str:
    if view.status.finished or view.dead:
        return f"{fmt_rate(view.average_throughput())} frames/s average"
    return f"{fmt_rate(view.throughput(now=now))} frames/s"


# -- lines ------------------------------------------------------------------------------------------
def progress_line(view: RunView, now: float | None = None) -> str:
    """``HH:MM:SS  47.0% 1,234/~2,626 frames | 12.3 frames/s | ETA 01:52 | ...``"""
    now = now or time.time()
    jobs_done = sum(1 for j in view.jobs.values() if j.status == ev.JobStatus.DONE)
    state = ""
    if view.dead:
        state = f" | DEAD: {dead_text(view)}"
    elif view.paused:
        state = f" | PAUSED: {pause_text(view)}"
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(now))} {totals_text(view)} | "
        f"{rate_text(view, now)} | ETA {eta_text(view, now)} | "
        f"elapsed {fmt_duration(view.elapsed(now))} | jobs {jobs_done}/{len(view.jobs)} | "
        f"workers: {workers_text(view, now)}{state}"
    )


def notable_text(e: ev.Event) -> str | None:
    """What a notable event says (lines), not naming the worker that sent it; None for the
    others (progress, heartbeats, shards done: the progress line and the panels show them)."""
    if isinstance(e, ev.RunStarted):
        lines = [
            f"virnucpro-tui run -> {e.out} on {', '.join(e.devices)}"
            + (" (resuming)" if e.resumed else "")
        ]
        if e.demo:
            lines.append(f"DEMO: {e.notice}")
        return "\n".join(lines)
    if isinstance(e, ev.JobStarted):
        counts = f"{plural(e.records, 'sequence')}, {plural(e.chunks_total, 'chunk')}"
        return f"job {e.job}: {counts} from {e.input}"
    if isinstance(e, ev.JobPrepared) and e.done:
        text = (
            f"job {e.job}: prepared {e.frames_prepared:,} frames in {shards(e.shards_total or 0)}"
        )
        return text + (f" ({dedup_text(e.duplicate_frames)})" if e.duplicate_frames else "")
    if isinstance(e, ev.JobDone):
        demo = " [DEMO: not biological predictions]" if e.demo else ""
        return (
            f"job {e.job}: done, {e.frames:,} frames, {e.viral_sequences:,}/"
            f"{e.sequences:,} sequences called virus{demo} -> {e.out_dir}"
        )
    if isinstance(e, ev.ModelLoad):
        return _model_load_text(e)
    if isinstance(e, ev.WorkerStateChanged) and e.state in (
        ev.WorkerState.CRASHED,
        ev.WorkerState.RESTARTING,
    ):
        return f"{e.state}: {e.reason or ''}"
    if isinstance(e, ev.ErrorEvent) and (e.disk_full or (e.fatal and e.worker is None)):
        return None  # the run stops on these, and the command prints them once as its last line
    if isinstance(e, ev.ErrorEvent | ev.WarningEvent):
        return f"{e.type}: {e.message}"
    if isinstance(e, ev.OutOfMemory):
        return f"out of memory on a batch of {e.batch_size}, retrying in halves"
    if isinstance(e, ev.ShardRequeued):
        return f"shard {e.job}/{e.shard} requeued (attempt {e.attempt}): {e.reason}"
    if isinstance(e, ev.CacheCleared) and e.reason == "manual":
        return f"cache cleared, {fmt_bytes(e.bytes_freed)} freed"
    if isinstance(e, ev.RunPaused):
        running = ev.present(e.shards_running)
        finishing = f"; {shards(running)} already running finish" if running else ""
        return f"paused: no new shard starts{finishing}"
    if isinstance(e, ev.RunResumed):
        return "resumed: shards start again"
    return None


def _model_load_text(e: ev.ModelLoad) -> str | None:
    """A model's load, warm-up and errors (its start is only in the log)."""
    if e.phase == ev.ModelPhase.WARMUP_START:
        work = "compiling and warming up" if e.compile else "warming up"
        if e.compile and e.cached:
            work = "loading its compiled kernels and warming up"
        return f"{e.model} {work} (the first shard waits for it)"
    if e.phase == ev.ModelPhase.WARMUP_DONE:
        return f"{e.model} warmed up in {e.seconds or 0:.1f} s"
    if e.phase == ev.ModelPhase.COMPILE_BESIDE_START:
        return f"{e.model} runs uncompiled while a process beside compiles it"
    if e.phase == ev.ModelPhase.COMPILE_BESIDE_DONE:
        return f"{e.model} compiled beside in {e.seconds or 0:.1f} s: it runs compiled from now"
    if e.phase == ev.ModelPhase.DONE:
        warmup = ev.present(e.compile_seconds)
        extra = f", then warm-up {warmup:.1f} s" if warmup else ""
        return (
            f"{e.model} loaded in {e.seconds or 0:.1f} s "
            f"({fmt_bytes(ev.present(e.bytes_on_device))}, {ev.present(e.dtype)}){extra}"
        )
    return None


def event_line(e: ev.Event) -> str | None:
    """A notable event as plain lines naming the worker (``worker 0: esm loaded in ...``)."""
    text = notable_text(e)
    if text is None or e.worker is None:
        return text
    return f"worker {e.worker}: {text}"


def log_description(e: ev.Event) -> str:
    """One line about any event, for the dashboard's event log."""
    text = notable_text(e)
    return " · ".join(text.split("\n")) if text else _quiet_text(e)


def _quiet_text(e: ev.Event) -> str:
    """One line about an event that is not notable (the dashboard's log shows every event)."""
    if isinstance(e, ev.WorkerStateChanged):
        text = str(e.state)
        if e.state == ev.WorkerState.BUSY and (shard := ev.present(e.shard)) is not None:
            text += f" on {e.job} #{shard} ({e.frames or 0:,} frames)"
        if e.reason:
            text += f": {e.reason}"
        return text + (f" (pid {e.pid})" if e.state == ev.WorkerState.STARTING and e.pid else "")
    if isinstance(e, ev.ModelLoad):
        label = MODEL_LABELS.get(e.model, e.model)
        return f"{label} {e.phase} ({ev.present(e.dtype)}) from {e.source}"
    if isinstance(e, ev.ShardDone):
        rate = e.frames / max(e.seconds or 1e-9, 1e-9)
        return (
            f"{e.job} #{e.shard}: {e.frames:,} frames in {e.seconds:.1f} s "
            f"({fmt_rate(rate)}/s), {e.virus_frames:,} virus"
        )
    if isinstance(e, ev.CacheCleared):
        return (
            f"cache cleared ({e.reason}): {fmt_bytes(e.bytes_freed)} freed, reserved "
            f"{fmt_bytes(e.reserved_before)} -> {fmt_bytes(e.reserved_after)}"
        )
    if isinstance(e, ev.ShardSkipped):
        return f"{e.job} #{e.shard} already done ({e.frames:,} frames): skipped"
    if isinstance(e, ev.JobAdded):
        return (
            f"added {e.input}: {plural(e.records, 'sequence')}, {plural(e.chunks_total, 'chunk')}"
        )
    if isinstance(e, ev.JobPrepared):
        return (
            f"{e.job}: prepared {e.chunks_prepared:,}/{e.chunks_total:,} chunks, "
            f"{e.frames_prepared:,} frames"
        )
    if isinstance(e, ev.RunDone):
        return f"run {e.status} (exit {e.exit_code}) after {fmt_duration(e.seconds)}"
    return ""


def dedup_text(duplicates: int) -> str:
    return f"{plural(duplicates, 'identical frame')} reuse an earlier result"


def result_counts(r: ev.JobDone) -> str:
    """A finished input's counts, each noun in the number it needs ("1 sequence called virus")."""
    return (
        f"{plural(r.sequences, 'sequence')}, {plural(r.chunks, 'chunk')} "
        f"({r.chunks_without_frames:,} without a stop-free frame), {plural(r.frames, 'frame')}, "
        f"{plural(r.virus_frames, 'virus frame')}, "
        f"{plural(r.viral_sequences, 'sequence')} called virus"
    )


def summary_lines(view: RunView) -> list[str]:
    state = run_state(view)
    lines = [f"run {state}: {view.frames_done:,} frames in {fmt_duration(view.elapsed())}"]
    if view.dead:
        lines[0] += f" ({dead_text(view)})"
    report = None  # the run's one report.html, which every job's outputs name
    for job in view.jobs.values():
        r = job.result
        if job.status == ev.JobStatus.DONE and r is not None:
            report = r.outputs.get(REPORT_FILE, report)
            lines.append(f"  {job.name}: {result_counts(r)}")
            for name, path in r.outputs.items():
                if path != r.features_path and name != REPORT_FILE:  # listed once, below
                    lines.append(f"    {name}: {path}")
            if r.duplicate_frames:
                lines.append(
                    f"    computed once: {r.frames - r.duplicate_frames:,} distinct frames; "
                    f"{dedup_text(r.duplicate_frames)}"
                )
            if r.features_path:
                lines.append(f"    features: {r.features_path} ({fmt_bytes(r.features_bytes)})")
        else:
            status = "not finished" if view.dead or view.status.finished else job.status
            lines.append(f"  {job.name}: {status}, {job.frames_done:,} frames done")
    if report is not None:  # first: what a person opens
        lines.insert(1, f"  report: {report}")
    if view.status != ev.RunStatus.COMPLETE and view.resumable:
        lines += resume_lines(view)
    if view.demo:
        lines.append(f"DEMO: {view.notice}")
    return lines


def resume_lines(view: RunView) -> list[str]:
    """How to continue a run that did not complete (the exact command when it is known)."""
    lines = [f"resumable: rerun the same command (same --out {view.out}) to continue"]
    if view.resume_command:
        lines.append(f"  {view.resume_command}")
    return lines
