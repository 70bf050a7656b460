"""Every sentence the front ends say about a run, built from structured data: the lines of
notable events, the progress line, the summary, the event log's descriptions and the number
formats. The headless reporter, ``attach --no-ui`` and the dashboard all word a run through
this one module, so they say the same thing the same way (docs/architecture.md#front-ends).
"""

from __future__ import annotations

import time

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.view import RunView

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


# -- lines ------------------------------------------------------------------------------------------
def progress_line(view: RunView, now: float | None = None) -> str:
    """``HH:MM:SS  47.0% 1,234/2,626 frames | 12.3 frames/s | ETA 01:52 | ...``"""
    now = now or time.time()
    done, total = view.frames_done, view.frames_total
    pct = f"{100 * done / total:5.1f}%" if total else "  ?  %"
    total_s = f"{total:,}" if total is not None else "?"
    jobs_done = sum(1 for j in view.jobs.values() if j.status == ev.JobStatus.DONE)
    states: dict[str, int] = {}
    for w in view.workers.values():
        states[w.state] = states.get(w.state, 0) + 1
    workers = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "starting"
    paused = " | PAUSED" if view.paused else ""
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(now))} {pct} {done:,}/{total_s} frames | "
        f"{view.throughput(now=now):,.1f} frames/s | ETA {fmt_duration(view.eta_seconds(now))} | "
        f"elapsed {fmt_duration(view.elapsed(now))} | jobs {jobs_done}/{len(view.jobs)} | "
        f"workers: {workers}{paused}"
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
        return f"job {e.job}: {e.records:,} sequences, {e.chunks_total:,} chunks from {e.input}"
    if isinstance(e, ev.JobPrepared) and e.done:
        text = f"job {e.job}: prepared {e.frames_prepared:,} frames in {e.shards_total or 0} shards"
        return text + (f" ({dedup_text(e.duplicate_frames)})" if e.duplicate_frames else "")
    if isinstance(e, ev.JobDone):
        demo = " [DEMO: not biological predictions]" if e.demo else ""
        return (
            f"job {e.job}: done, {e.frames:,} frames, {e.viral_sequences}/"
            f"{e.sequences} sequences called virus{demo} -> {e.out_dir}"
        )
    if isinstance(e, ev.ModelLoad) and e.phase == ev.ModelPhase.WARMUP_START:
        return f"{e.model} compiling and warming up"
    if isinstance(e, ev.ModelLoad) and e.phase == ev.ModelPhase.DONE:
        warm = ev.present(e.compile_seconds)
        return (
            f"{e.model} loaded in {e.seconds or 0:.1f} s "
            f"({fmt_bytes(ev.present(e.bytes_on_device))}, {ev.present(e.dtype)})"
            + (f", compiled and warmed up in {warm:.1f} s" if warm else "")
        )
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
    if isinstance(e, ev.RunPaused | ev.RunResumed):
        return "dispatch paused" if isinstance(e, ev.RunPaused) else "dispatch resumed"
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
        if e.state == ev.WorkerState.BUSY:
            text += f" on {e.job} #{ev.present(e.shard)} ({e.frames or 0:,} frames)"
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
        return f"added {e.input}: {e.records:,} sequences, {e.chunks_total:,} chunks"
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


def summary_lines(view: RunView) -> list[str]:
    lines = [f"run {view.status}: {view.frames_done:,} frames in {fmt_duration(view.elapsed())}"]
    for job in view.jobs.values():
        r = job.result
        if job.status == ev.JobStatus.DONE and r is not None:
            lines.append(
                f"  {job.name}: {r.sequences:,} sequences, {r.chunks:,} chunks "
                f"({r.chunks_without_frames:,} without a stop-free frame), {r.frames:,} frames, "
                f"{r.virus_frames:,} virus frames, {r.viral_sequences:,} sequences called virus"
            )
            for name, path in r.outputs.items():
                lines.append(f"    {name}: {path}")
            if r.duplicate_frames:
                lines.append(
                    f"    computed once: {r.frames - r.duplicate_frames:,} distinct frames; "
                    f"{dedup_text(r.duplicate_frames)}"
                )
            if r.features_path:
                lines.append(f"    features: {r.features_path} ({fmt_bytes(r.features_bytes)})")
        else:
            lines.append(f"  {job.name}: {job.status}, {job.frames_done:,} frames done")
    if view.status != ev.RunStatus.COMPLETE and view.resumable:
        lines.append(f"resumable: rerun the same command (same --out {view.out}) to continue")
    if view.demo:
        lines.append(f"DEMO: {view.notice}")
    return lines
