"""The headless front end: plain progress lines for ssh, nohup, SLURM and CI.

One line every few seconds and a line for each notable event, on stderr, with no control
characters. It reads the same event stream as the Textual app, through the same RunView.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from virnucpro_tui.pool.events import (
    CacheCleared,
    ErrorEvent,
    Event,
    JobDone,
    JobPrepared,
    JobStarted,
    JobStatus,
    ModelLoad,
    ModelPhase,
    OutOfMemory,
    RunDone,
    RunPaused,
    RunResumed,
    RunStarted,
    RunStatus,
    ShardRequeued,
    WarningEvent,
    WorkerState,
    WorkerStateChanged,
    present,
)
from virnucpro_tui.run.view import RunView


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


def progress_line(view: RunView, now: float | None = None) -> str:
    now = now or time.time()
    done, total = view.frames_done, view.frames_total
    pct = f"{100 * done / total:5.1f}%" if total else "  ?  %"
    total_s = f"{total:,}" if total is not None else "?"
    jobs_done = sum(1 for j in view.jobs.values() if j.status == JobStatus.DONE)
    states: dict[str, int] = {}
    for w in view.workers.values():
        states[w.state] = states.get(w.state, 0) + 1
    workers = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "starting"
    paused = " | PAUSED" if view.paused else ""
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(now))} {pct} {done:,}/{total_s} frames | "
        f"{view.throughput(now=now):,.1f} frames/s | ETA {fmt_duration(view.eta_seconds(now))} | "
        f"elapsed {fmt_duration(view.elapsed(now))} | jobs {jobs_done}/{len(view.jobs)} | workers: {workers}{paused}"
    )


def event_line(view: RunView, e: Event) -> str | None:
    """A line for a notable event, or None."""
    who = f"worker {e.worker}: " if e.worker is not None else ""
    if isinstance(e, RunStarted):
        lines = [
            f"virnucpro-tui run -> {e.out} on {', '.join(e.devices)}"
            + (" (resuming)" if e.resumed else "")
        ]
        if e.demo:
            lines.append(f"DEMO: {e.notice}")
        return "\n".join(lines)
    if isinstance(e, JobStarted):
        return f"job {e.job}: {e.records:,} sequences, {e.chunks_total:,} chunks from {e.input}"
    if isinstance(e, JobPrepared) and e.done:
        return f"job {e.job}: prepared {e.frames_prepared:,} frames in {e.shards_total or 0} shards"
    if isinstance(e, JobDone):
        demo = " [DEMO: not biological predictions]" if e.demo else ""
        return (
            f"job {e.job}: done, {e.frames:,} frames, {e.viral_sequences}/"
            f"{e.sequences} sequences called virus{demo} -> {e.out_dir}"
        )
    if isinstance(e, ModelLoad) and e.phase == ModelPhase.DONE:
        return (
            f"{who}{e.model} loaded in {e.seconds or 0:.1f} s "
            f"({fmt_bytes(present(e.bytes_on_device))}, {present(e.dtype)})"
        )
    if isinstance(e, WorkerStateChanged) and e.state in (
        WorkerState.CRASHED,
        WorkerState.RESTARTING,
    ):
        return f"{who}{e.state}: {e.reason or ''}"
    if isinstance(e, ErrorEvent) and (e.disk_full or (e.fatal and e.worker is None)):
        return None  # the run stops on these, and the command prints them once as its last line
    if isinstance(e, ErrorEvent | WarningEvent):
        return f"{who}{e.type}: {e.message}"
    if isinstance(e, OutOfMemory):
        return f"{who}out of memory on a batch of {e.batch_size}, retrying in halves"
    if isinstance(e, ShardRequeued):
        return f"shard {e.job}/{e.shard} requeued (attempt {e.attempt}): {e.reason}"
    if isinstance(e, CacheCleared) and e.reason == "manual":
        return f"{who}cache cleared, {fmt_bytes(e.bytes_freed)} freed"
    if isinstance(e, RunPaused | RunResumed):
        return "dispatch paused" if isinstance(e, RunPaused) else "dispatch resumed"
    return None


def summary_lines(view: RunView) -> list[str]:
    lines = [f"run {view.status}: {view.frames_done:,} frames in {fmt_duration(view.elapsed())}"]
    for job in view.jobs.values():
        r = job.result
        if job.status == JobStatus.DONE and r is not None:
            lines.append(
                f"  {job.name}: {r.sequences:,} sequences, {r.chunks:,} chunks "
                f"({r.chunks_without_frames:,} without a stop-free frame), {r.frames:,} frames, "
                f"{r.virus_frames:,} virus frames, {r.viral_sequences:,} sequences called virus"
            )
            for name, path in r.outputs.items():
                lines.append(f"    {name}: {path}")
        else:
            lines.append(f"  {job.name}: {job.status}, {job.frames_done:,} frames done")
    if view.status != RunStatus.COMPLETE:
        lines.append(f"resumable: rerun the same command (same --out {view.out}) to continue")
    if view.demo:
        lines.append(f"DEMO: {view.notice}")
    return lines


class HeadlessReporter:
    """An event sink that prints progress lines to ``stream``."""

    def __init__(self, stream: TextIO | None = None, interval_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (2.0 if tty else 5.0)
        self.view = RunView()
        self._last_line = 0.0

    def print(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        line = event_line(self.view, event)
        if line:
            self.print(line)
        now = time.time()
        if isinstance(event, RunDone):
            self.print(progress_line(self.view, now))
            for text in summary_lines(self.view):
                self.print(text)
        elif now - self._last_line >= self.interval_s and self.view.status == RunStatus.RUNNING:
            self._last_line = now
            self.print(progress_line(self.view, now))
