"""The headless front end: plain progress lines for ssh, nohup, SLURM and CI.

One line every few seconds and a line for each notable event, on stderr, with no control
characters. It reads the same event stream as the Textual app, through the same RunView.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from virnucpro_tui.pool.events import Event
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
    jobs_done = sum(1 for j in view.jobs.values() if j.status == "done")
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
    t, w = e["type"], e.get("worker")
    who = f"worker {w}: " if w is not None else ""
    if t == "run_started":
        lines = [
            f"virnucpro-tui run -> {e.get('out')} on {', '.join(e.get('devices', []))}"
            + (" (resuming)" if e.get("resumed") else "")
        ]
        if e.get("demo"):
            lines.append(f"DEMO: {e.get('notice')}")
        return "\n".join(lines)
    if t == "job_started":
        return f"job {e['job']}: {e.get('records', 0):,} sequences, {e.get('chunks_total', 0):,} chunks from {e.get('input')}"
    if t == "job_prepared" and e.get("done"):
        return f"job {e['job']}: prepared {e.get('frames_prepared', 0):,} frames in {e.get('shards_total') or 0} shards"
    if t == "job_done":
        demo = " [DEMO: not biological predictions]" if e.get("demo") else ""
        return (
            f"job {e['job']}: done, {e.get('frames', 0):,} frames, {e.get('viral_sequences', 0)}/"
            f"{e.get('sequences', 0)} sequences called virus{demo} -> {e.get('out_dir')}"
        )
    if t == "model_load" and e.get("phase") == "done":
        return (
            f"{who}{e['model']} loaded in {e.get('seconds', 0):.1f} s ({fmt_bytes(e.get('bytes_on_device'))}, "
            f"{e.get('dtype')})"
        )
    if t == "worker_state" and e.get("state") in ("crashed", "restarting"):
        return f"{who}{e['state']}: {e.get('reason', '')}"
    if t == "error" and (e.get("disk_full") or (e.get("fatal") and w is None)):
        return None  # the run stops on these, and the command prints them once as its last line
    if t in ("error", "warning"):
        return f"{who}{t}: {e.get('message')}"
    if t == "oom":
        return f"{who}out of memory on a batch of {e.get('batch_size')}, retrying in halves"
    if t == "shard_requeued":
        return f"shard {e.get('job')}/{e.get('shard')} requeued (attempt {e.get('attempt')}): {e.get('reason')}"
    if t == "cache_cleared" and e.get("reason") == "manual":
        return f"{who}cache cleared, {fmt_bytes(e.get('bytes_freed'))} freed"
    if t in ("run_paused", "run_resumed"):
        return "dispatch paused" if t == "run_paused" else "dispatch resumed"
    return None


def summary_lines(view: RunView) -> list[str]:
    lines = [f"run {view.status}: {view.frames_done:,} frames in {fmt_duration(view.elapsed())}"]
    for job in view.jobs.values():
        r = job.result
        if job.status == "done":
            lines.append(
                f"  {job.name}: {r.get('sequences', 0):,} sequences, {r.get('chunks', 0):,} chunks "
                f"({r.get('chunks_without_frames', 0):,} without a stop-free frame), {r.get('frames', 0):,} frames, "
                f"{r.get('virus_frames', 0):,} virus frames, {r.get('viral_sequences', 0):,} sequences called virus"
            )
            for name, path in r.get("outputs", {}).items():
                lines.append(f"    {name}: {path}")
        else:
            lines.append(f"  {job.name}: {job.status}, {job.frames_done:,} frames done")
    if view.status != "complete" and view.resumable:
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
        if event["type"] == "run_done":
            self.print(progress_line(self.view, now))
            for text in summary_lines(self.view):
                self.print(text)
        elif now - self._last_line >= self.interval_s and self.view.status == "running":
            self._last_line = now
            self.print(progress_line(self.view, now))
