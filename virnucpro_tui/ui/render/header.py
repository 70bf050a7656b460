"""The header (status, run, inputs, timing, speed) and the overall progress bar."""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len
from rich.text import Text

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.describe import (
    dead_text,
    eta_text,
    fmt_duration,
    fmt_rate,
    pause_text,
    rate_text,
    totals_text,
)
from virnucpro_tui.run.view import JobView, RunView
from virnucpro_tui.ui.render.text import (
    FILLED,
    FREE,
    OTHERS,
    RESERVED,
    join_lines,
    pack,
    stacked_bar,
    wrap_words,
)
from virnucpro_tui.ui.state import Mode

PROGRESS_LEGEND = ((FILLED, "done"), (RESERVED, "in flight"), (FREE, "to do"))


def run_status(view: RunView, mode: Mode) -> tuple[str, str]:
    if view.dead:
        return "DEAD", "bold red"
    if view.status.finished:
        style = {"complete": "bold green", "interrupted": "bold yellow"}.get(
            view.status, "bold red"
        )
        return view.status.upper(), style
    if mode.waiting_for:
        return "WAITING", "yellow"
    if mode.abandoning:
        return "ABANDONING", "bold red"
    if mode.stopping:
        return "STOPPING", "bold yellow"
    if view.paused:
        return "PAUSED", "bold yellow"
    if view.status == "starting":
        return "STARTING", "yellow"
    return "RUNNING", "bold green"


def job_input_name(job: JobView) -> str:
    return Path(job.input).name if job.input else job.name


def header_text(view: RunView, width: int, now: float, mode: Mode) -> Text:
    status, style = run_status(view, mode)
    first = [Text("virnucpro-tui", style="bold"), Text(status, style=style)]
    if mode.read_only:
        first.append(
            Text(f"attached, read-only{f' to {mode.owner}' if mode.owner else ''}", "italic")
        )
    first.append(Text(f"run {view.out or mode.waiting_for or '…'}"))
    inputs = ", ".join(job_input_name(j) for j in view.jobs.values()) or "-"
    figures = [Text(f"inputs {inputs}"), *_timing_segments(view, now), *_speed_segments(view, now)]
    lines = pack(first, width) + pack(figures, width)
    if view.dead:
        lines += _dead_lines(view, mode, width)
    elif view.paused and not view.status.finished:
        lines += pack([Text(f"paused: {pause_text(view)} (p resumes)", "bold yellow")], width)
    if mode.stopping and not view.status.finished and not view.dead:
        lines += pack([Text("q again abandons the shards in flight", style="bold yellow")], width)
    return join_lines(lines)


def _dead_lines(view: RunView, mode: Mode, width: int) -> list[Text]:
    """Why the run is not running, and the whole command that resumes it (wrapped, never cut:
    it is there to be copied)."""
    command = mode.resume_command or view.resume_command
    how = f"resume: {command}" if command else f"resume: rerun the same command (--out {view.out})"
    lines = pack([Text(dead_text(view), style="bold red")], width)
    return lines + [Text(line, style="bold") for line in wrap_words(how, width)]


def _timing_segments(view: RunView, now: float) -> list[Text]:
    return [Text(f"elapsed {fmt_duration(view.elapsed(now))}"), Text(f"ETA {eta_text(view, now)}")]


def _speed_segments(view: RunView, now: float) -> list[Text]:
    segments = [Text(rate_text(view, now), style="" if not view.live else "bold")]
    proteins = view.proteins_per_s()
    if proteins:
        segments.append(Text(f"ESM-2 {fmt_rate(proteins)} proteins/s"))
    return segments


def progress_text(view: RunView, width: int) -> Text:
    totals = view.totals()
    jobs_done = sum(1 for j in view.jobs.values() if j.status == ev.JobStatus.DONE)
    label = f" {totals_text(view)} · jobs {jobs_done}/{len(view.jobs)}"
    bar_width = max(width - cell_len(label), 10)
    if totals.total is None:
        read = view.fraction_read() or 0.0
        return stacked_bar(1.0, [(read, OTHERS, "dim")], bar_width) + Text(label)
    in_flight = 0 if view.dead else view.frames_in_flight
    parts = [(totals.done, FILLED, "green"), (in_flight, RESERVED, "yellow")]
    return stacked_bar(totals.total, parts, bar_width) + Text(label)
