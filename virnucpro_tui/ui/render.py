"""Pure functions from a RunView to Rich text: what each widget shows.

Widgets call these with their width, so a panel reflows from 80 to 200+ columns. Meaning never
rests on colour alone (NO_COLOR, 256-colour terminals): states are words, bars use distinct glyphs.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.describe import (
    MODEL_LABELS,
    dead_text,
    dedup_text,
    eta_text,
    fmt_bytes,
    fmt_clock,
    fmt_count,
    fmt_duration,
    fmt_rate,
    log_description,
    model_phase,
    pause_text,
    percent,
    phase_elapsed,
    plural,
    rate_text,
    summary_lines,
    totals_text,
)
from virnucpro_tui.run.view import JobView, RunView, WorkerView

SPARKS = "▁▂▃▄▅▆▇█"
DEMO_BANNER = "DEMO MODELS — scores are not biological predictions"
STATE_STYLES = {
    "busy": "bold green",
    "idle": "cyan",
    "loading": "bold yellow",
    "starting": "yellow",
    "clearing": "magenta",
    "stopped": "dim",
    "crashed": "bold red",
    "restarting": "bold red",
    "gone": "bold red",
}
LABEL_WIDTH = 8
SILENT_AFTER_S = 10.0
# The glyphs of every bar, in one place: the bars draw with them and the help explains them.
FILLED, RESERVED, OTHERS, FREE = "█", "▓", "▒", "░"
MEMORY_LEGEND = {
    "GPU": ((FILLED, "allocated"), (RESERVED, "reserved (cache)"), (FREE, "free")),
    "CPU": ((FILLED, "this worker (RSS)"), (OTHERS, "other processes"), (FREE, "free")),
}
PROGRESS_LEGEND = ((FILLED, "done"), (RESERVED, "in flight"), (FREE, "to do"))
CALL_RULE = (
    "a sequence is called virus when at least half of its chunks with frames are viral; a "
    "chunk is viral when its best frame's P(virus) is at least its best P(others)"
)


@dataclass
class Mode:
    """What the app knows beyond the events: how it is attached and what the user asked."""

    read_only: bool = False
    stopping: bool = False
    abandoning: bool = False
    over: bool = False  # the run has ended (or never started), as far as the app is concerned
    owner: str | None = None  # attach: "pid 1234 on host"
    waiting_for: str | None = None  # attach: the events file, until it has events
    resume_command: str | None = None  # the command that resumes the run, when known


@dataclass
class DashboardState:
    """What every widget renders from: the run's view, the app's mode and its clock. The app
    owns one and hands it to each widget it composes."""

    view: RunView
    mode: Mode
    clock: Callable[[], float]

    @property
    def live(self) -> bool:
        """The run is going and the app still follows it."""
        return self.view.live and not self.mode.over


# -- building blocks ------------------------------------------------------------------------------
def pack(segments: Iterable[Text], width: int, sep: str = " · ") -> list[Text]:
    """Greedy line filling: segments joined by ``sep``, a new line when the next one won't fit."""
    lines: list[Text] = []
    line = Text()
    for segment in segments:
        if not segment.plain:
            continue
        if cell_len(segment.plain) > width:
            segment = segment.copy()
            segment.truncate(width, overflow="ellipsis")
        if line.plain and cell_len(line.plain) + len(sep) + cell_len(segment.plain) > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(sep, style="dim")
        line.append_text(segment)
    lines.append(line)
    return lines


def labelled(label: str, segments: Iterable[Text], width: int) -> list[Text]:
    """``label`` in a fixed column, its segments packed beside it (continuation lines indented)."""
    lines = pack(segments, max(width - LABEL_WIDTH, 12))
    out = []
    for i, line in enumerate(lines):
        head = Text(f"{label if i == 0 else '':<{LABEL_WIDTH}}", style="bold dim")
        out.append(head + line)
    return out


def join_lines(lines: Sequence[Text]) -> Text:
    return Text("\n").join(lines)


def bar(fraction: float, width: int, fill_style: str = "green") -> Text:
    """``[████░░░░]`` with ``fraction`` of ``width`` filled."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return Text.assemble((FILLED * filled, fill_style), (FREE * (width - filled), "dim"))


def stacked_bar(total: float, parts: Sequence[tuple[float, str, str]], width: int) -> Text:
    """A bar of ``width`` cells: each part (value, glyph, style) takes its share of ``total``."""
    text = Text()
    used = 0
    for value, glyph, style in parts:
        cells = min(round(max(value, 0) / total * width), width - used) if total > 0 else 0
        text.append(glyph * cells, style=style)
        used += cells
    text.append(FREE * (width - used), style="dim")
    return text


def sparkline(values: Sequence[float], width: int) -> Text:
    """Recent values as ▁..█, scaled between half the peak (or the minimum, if lower) and the peak."""
    values = list(values)[-width:]
    if not values:
        return Text("·" * min(width, 8), style="dim")
    top = max(values) or 1.0
    floor = min(min(values), top / 2)
    span = (top - floor) or 1.0
    top_level = len(SPARKS) - 1
    marks = "".join(SPARKS[min(round((v - floor) / span * top_level), top_level)] for v in values)
    return Text(marks, style="cyan")


# -- header and overall progress ------------------------------------------------------------------
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


def wrap_words(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken at spaces (a longer word is split)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        while cell_len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if line and cell_len(line) + 1 + cell_len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


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


# -- worker panels --------------------------------------------------------------------------------
def worker_title(w: WorkerView) -> Text:
    state = "gone" if w.gone else str(w.state)
    return Text.assemble(
        (f"worker {w.worker}", "bold"),
        f" · {w.device or 'device pending'} · ",
        (state.upper(), STATE_STYLES.get(state, "")),
    )


def worker_text(w: WorkerView, width: int, now: float, running: bool) -> Text:
    lines = [
        *labelled("state", _state_segments(w, now, running), width),
        *labelled("models", _model_segments(w, now, running), width),
        *labelled("memory", _memory_segments(w, width), width),
        *labelled("speed", _speed_segments_worker(w, width), width),
        *labelled("shard", _shard_segments(w, width), width),
        *labelled("cache", _cache_segments(w), width),
    ]
    if w.last_error:
        lines += labelled("problem", [Text(w.last_error, style="red")], width)
    return join_lines(lines)


def _state_segments(w: WorkerView, now: float, running: bool) -> list[Text]:
    if w.gone:
        pid = f" (pid {w.pid})" if w.pid else ""
        return [Text(f"gone{pid}: the run's process died", style=STATE_STYLES["gone"])]
    segments = [Text(w.state, style=STATE_STYLES.get(w.state, ""))]
    if w.pid:
        segments.append(Text(f"pid {w.pid}"))
    segments.append(Text(f"restarts {w.restarts}", style="bold red" if w.restarts else ""))
    silent = now - w.last_event if w.last_event else 0.0
    if running and not w.state.ended and silent > SILENT_AFTER_S:
        segments.append(Text(f"silent for {fmt_duration(silent)}", style="bold red"))
    if w.state.ended:
        return segments  # the last NVML reading would be stale
    return segments + _utilisation_segments(w)


def _utilisation_segments(w: WorkerView) -> list[Text]:
    if w.kind == "cpu" or (w.memory is not None and w.memory.kind == "cpu"):
        return [Text("util CPU (no NVML)", style="dim")]
    t = w.telemetry
    if t is None:
        return [Text("GPU util -", style="dim")]
    segments = [
        Text(f"GPU util {t.gpu_util:.0f}%", style="bold"),
        Text(f"mem util {t.mem_util:.0f}%"),
    ]
    if (temperature := ev.present(t.temperature_c)) is not None:
        segments.append(Text(f"{temperature:.0f} °C"))
    if (power := ev.present(t.power_w)) is not None:
        segments.append(Text(f"{power:.0f} W"))
    return segments


def _model_segments(w: WorkerView, now: float, running: bool) -> list[Text]:
    segments = []
    for name in ev.MODELS:
        m = w.models.get(name)
        label = MODEL_LABELS.get(name, name)
        if m is None or m.state == "not loaded":
            segments.append(Text(f"{label} not loaded", style="dim"))
        elif m.busy:
            elapsed = f" {phase_elapsed(m, now)}" if running else ""
            segments.append(Text(f"{label} {model_phase(m)}…{elapsed}", style="bold yellow"))
        elif m.state == "error":
            segments.append(Text(f"{label} load error", style="bold red"))
        else:
            size = fmt_bytes(m.bytes_on_device)
            warmup = f" + warm-up {m.warmup_seconds:.1f} s" if m.warmup_seconds else ""
            text = f"{label} loaded {m.seconds or 0:.1f} s{warmup}, {size}"
            segments.append(Text(text, style="green"))
    return segments


def _memory_segments(w: WorkerView, width: int) -> list[Text]:
    mem = w.memory
    if mem is None or not mem.total:
        return [Text("no reading yet", style="dim")]
    total, allocated, reserved = mem.total, mem.allocated, mem.reserved
    bar_width = max(min(width // 4, 30), 10)
    if mem.kind == "cpu":
        used = total - mem.free
        gauge = stacked_bar(
            total, [(allocated, FILLED, "green"), (used - allocated, OTHERS, "blue")], bar_width
        )
        return [
            gauge,
            Text(f"RSS {fmt_bytes(allocated)}"),
            Text(f"peak {fmt_bytes(mem.peak)}"),
            Text(f"machine free {fmt_bytes(mem.free)} of {fmt_bytes(total)}"),
        ]
    parts = [(allocated, FILLED, "green"), (reserved - allocated, RESERVED, "yellow")]
    gauge = stacked_bar(total, parts, bar_width)
    return [
        gauge,
        Text(f"alloc {fmt_bytes(allocated)}"),
        Text(f"reserved {fmt_bytes(reserved)}"),
        Text(f"peak {fmt_bytes(mem.peak)}"),
        Text(f"free {fmt_bytes(mem.free)} of {fmt_bytes(total)}"),
    ]


def _speed_segments_worker(w: WorkerView, width: int) -> list[Text]:
    segments = [sparkline(w.throughput, max(min(width // 5, 24), 8))]
    if w.throughput:
        segments.append(Text(f"{fmt_rate(w.throughput[-1])} frames/s", style="bold"))
    if w.esm_rate:
        segments.append(Text(f"ESM-2 {fmt_rate(w.esm_rate)} proteins/s"))
    if w.dnabert_rate:
        segments.append(Text(f"DNABERT-S {fmt_rate(w.dnabert_rate)} frames/s"))
    segments.append(Text(f"{w.shards_done:,} shards, {w.frames_done:,} frames"))
    return segments


def _shard_segments(w: WorkerView, width: int) -> list[Text]:
    if w.shard is None:
        return [Text("none", style="dim")]
    name = Text(f"{w.job or '?'} #{w.shard}")
    if w.state != ev.WorkerState.BUSY:
        return [name, Text("done", style="dim")]
    fraction = w.shard_done / w.shard_total if w.shard_total else 0.0
    gauge = bar(fraction, max(min(width // 6, 20), 8))
    return [
        name,
        Text(w.stage or "start"),
        gauge + Text(f" {w.shard_done:,}/{w.shard_total:,} frames"),
    ]


def _cache_segments(w: WorkerView) -> list[Text]:
    segments = [Text(plural(w.cache_clears, "clear"))]
    if w.last_freed is not None:
        segments.append(Text(f"last freed {fmt_bytes(w.last_freed)}", style="bold"))
    segments.append(Text(plural(w.ooms, "OOM split"), style="bold red" if w.ooms else ""))
    return segments


# -- tables -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A table column: its header, alignment, and when it goes if the width runs out (columns
    with the lowest ``drop`` go first; 0: never)."""

    header: str
    justify: JustifyMethod = "left"
    drop: int = 0
    short: str = ""  # the header when the full ones do not fit


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int) -> Table:
    """A table for ``width`` cells: short headers when the full ones do not fit, then columns
    dropped in their ``drop`` order; what still does not fit is cut with an ellipsis, never
    silently."""
    if _natural_width(columns, rows) > width:
        columns = [replace(c, header=c.short or c.header) for c in columns]
    keep = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop)
    for index in droppable:
        if _natural_width(*_only(keep, columns, rows)) <= width:
            break
        keep.remove(index)
    kept_columns, kept_rows = _only(keep, columns, rows)
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False, padding=(0, 1))
    for column in kept_columns:
        header = Text(column.header, style="bold", overflow="ellipsis", no_wrap=True)
        table.add_column(
            header, justify=column.justify, overflow="ellipsis", no_wrap=True, min_width=1
        )
    for row in kept_rows:
        table.add_row(*row)
    table.width = min(width, _natural_width(kept_columns, kept_rows))
    return table


def _only(
    keep: list[int], columns: Sequence[Column], rows: Sequence[Sequence[Text]]
) -> tuple[list[Column], list[list[Text]]]:
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]


def plain(renderable: RenderableType, width: int) -> str:
    """What ``renderable`` shows at ``width`` columns, as plain text (no trailing spaces)."""
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    console.print(renderable, crop=True)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def _natural_width(columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> int:
    widths = [cell_len(c.header) for c in columns]
    for row in rows:
        widths = [max(w, cell_len(cell.plain)) for w, cell in zip(widths, row, strict=True)]
    return sum(widths) + max(len(widths) - 1, 0) * 2


JOB_COLUMNS = (
    Column("Job"),
    Column("Status"),
    Column("Seqs", "right", drop=3),
    Column("Frames", "right"),
    Column("Progress", drop=4),
    Column("Called virus", "right", drop=2),
    Column("Outputs", drop=1),
)


def job_status(job: JobView, view: RunView) -> str:
    if job.status != ev.JobStatus.DONE and (view.status.finished or view.dead):
        status = "stopped"
    elif job.status == ev.JobStatus.RUNNING and not job.prepared:
        status = "preparing"
    else:
        status = str(job.status)
    return f"{status} (added)" if job.added else status


def job_cells(job: JobView, view: RunView) -> tuple[Text, ...]:
    total = job.frames_estimate(view.frames_per_chunk())
    if total is None:
        frames = f"{job.frames_done:,}"
    else:
        frames = f"{job.frames_done:,}/{'' if job.frames_total is not None else '~'}{total:,}"
    status = job_status(job, view)
    style = {"done": "green", "running": "bold", "preparing": "yellow", "stopped": "yellow"}
    r = job.result
    calls = f"{r.viral_sequences:,}/{r.sequences:,}" if r is not None else "-"
    fraction = 1.0 if job.result is not None else (job.frames_done / total if total else 0.0)
    progress = bar(fraction, 10) + Text(f" {100 * min(fraction, 1.0):.1f}%")
    return (
        Text(job.name),
        Text(status, style=style.get(status.split()[0], "")),
        Text(fmt_count(job.records)),
        Text(frames),
        progress,
        Text(calls),
        Text(output_place(job.out_dir, view.out)),
    )


def job_table(view: RunView, width: int) -> Table:
    rows = [job_cells(job, view) for job in view.jobs.values()]
    return fit_table(JOB_COLUMNS, rows, width)


def output_place(out_dir: str, run_dir: str) -> str:
    """Where a job's outputs go, relative to the run directory shown in the header."""
    if not out_dir:
        return "-"
    if not run_dir:
        return out_dir
    relative = os.path.relpath(out_dir, run_dir)
    return (
        "run dir" if relative == "." else (out_dir if relative.startswith("..") else f"{relative}/")
    )


# -- results --------------------------------------------------------------------------------------
def results_text(view: RunView, width: int) -> Text:
    scored = view.virus_frames + view.others_frames
    frames = [
        Text(f"{scored:,} scored"),
        Text(
            f"virus {view.virus_frames:,} ({percent(view.virus_frames, scored)})", style="bold red"
        ),
        Text(
            f"others {view.others_frames:,} ({percent(view.others_frames, scored)})",
            style="bold blue",
        ),
    ]
    done = [j.result for j in view.jobs.values() if j.result is not None]
    if done:
        seqs = sum(r.sequences for r in done)
        viral = sum(r.viral_sequences for r in done)
        chunks = sum(r.chunks for r in done)
        empty = sum(r.chunks_without_frames for r in done)
        sequences = [
            Text(f"{seqs:,} sequences"),
            Text(f"{viral:,} called virus ({percent(viral, seqs)})", style="bold red"),
            Text(f"{chunks:,} chunks"),
            Text(f"{empty:,} without a stop-free frame"),
        ]
    else:
        sequences = [Text("counted when a job is done", style="dim")]
    duplicates = sum(j.duplicate_frames for j in view.jobs.values())
    if duplicates:
        frames.append(Text(f"computed once: {dedup_text(duplicates)}"))
    lines = labelled("frames", frames, width) + labelled("seqs", sequences, width)
    saved = [
        Text(f"{r.features_path} ({fmt_bytes(r.features_bytes)})") for r in done if r.features_path
    ]
    if saved:
        lines += labelled("saved", saved, width)
    if view.demo:
        lines.append(Text(DEMO_BANNER, style="bold yellow"))
    return join_lines(lines)


def histogram_text(counts: Sequence[int], width: int, height: int) -> Text:
    """A column chart of the 20-bin P(virus) histogram; bins at or past 0.5 are the virus side."""
    bins = len(counts)
    top = max(counts) if counts else 0
    axis = len(f"{top:,}") + 2
    cell = max(min((width - axis) // bins, 4), 1)
    lines = [Text("frames by P(virus)", style="bold")]
    for row in range(height - 1, -1, -1):
        label = (
            f"{top:>{axis - 2},} ┤"
            if row == height - 1
            else (f"{0:>{axis - 2}} ┤" if row == 0 else " " * (axis - 1) + "┤")
        )
        line = Text(label, style="dim")
        for i, count in enumerate(counts):
            eighths = round(count / top * height * 8) if top else 0
            level = eighths - row * 8
            glyph = " " if level <= 0 else ("█" if level >= 8 else SPARKS[level - 1])
            line.append(glyph * cell, style="red" if i >= bins // 2 else "blue")
        lines.append(line)
    span = cell * bins
    ticks = [" "] * (span + 1)
    for pos, mark in ((0, "0"), (span // 2, "0.5"), (span - 1, "1")):
        for k, ch in enumerate(mark):
            if pos + k <= span:
                ticks[min(pos + k, span)] = ch
    lines.append(Text(" " * axis + "".join(ticks).rstrip(), style="dim"))
    legend = "others ◀ 0.5 ▶ virus"
    lines.append(Text(" " * axis + f"{legend:^{span}}", style="dim"))
    return join_lines(lines)


TOP_SEQUENCE_COLUMNS = (  # the headers say what each figure is (docs/outputs.md#the-call)
    Column("#", "right"),
    Column("Sequence"),
    Column("Call (virus: ≥ half its chunks viral)", short="Call"),
    Column("max P(virus) (its best frame)", "right", short="max P(virus)"),
)
TOP_FRAME_COLUMNS = (Column("#", "right"), Column("Frame"), Column("P(virus)", "right"))


def top_rows(
    view: RunView, compact: bool = False
) -> tuple[str, Sequence[Column], list[tuple[Text, ...]]]:
    """The input sequences called virus first, then by max P(virus) (once a job is done), else
    the best frames so far. The title says how a call is made (``compact``: a short title and
    five rows, for the overview)."""
    rows: list[tuple[Text, ...]]
    if view.top_sequences:
        rows = [
            (Text(str(i + 1)), Text(sid), Text(call, style=_call_style(call)), Text(f"{score:.4f}"))
            for i, (sid, score, call) in enumerate(view.top_sequences)
        ]
        title = (
            "Top sequences: called virus first, then by max P(virus)"
            if compact
            else "Top input sequences: called virus first, then by max P(virus) (their best "
            f"frame's score). Call: {CALL_RULE}."
        )
        return title, TOP_SEQUENCE_COLUMNS, rows[:5] if compact else rows
    frames: list[tuple[Text, ...]] = [
        (Text(str(i + 1)), Text(fid), Text(f"{score:.4f}"))
        for i, (fid, score) in enumerate(view.top_frames)
    ]
    title = (
        "Top frames so far"
        if compact
        else "Top-scoring frames so far (sequences are called when their job is done)"
    )
    return title, TOP_FRAME_COLUMNS, frames[:5] if compact else frames


def _call_style(call: str) -> str:
    return "bold red" if call == "virus" else ("blue" if call == "others" else "dim")


def top_table(view: RunView, width: int) -> tuple[str, Table]:
    title, columns, rows = top_rows(view)
    return title, fit_table(columns, rows, width)


# -- event log ------------------------------------------------------------------------------------
LOG_GROUPS: dict[str, frozenset[str]] = {
    "problems": frozenset({"error", "warning", "oom", "shard_requeued"}),
    "models": frozenset({"model_load"}),
    "workers": frozenset({"worker_state"}),
    "shards": frozenset({"shard_done", "shard_skipped", "shard_requeued"}),
    "memory": frozenset({"cache_cleared", "oom"}),
    "jobs": frozenset({"job_started", "job_added", "job_prepared", "job_done"}),
    "run": frozenset({"run_started", "run_done", "run_paused", "run_resumed"}),
}
LOG_GROUP_LABELS = {
    "problems": "Errors & warnings",
    "models": "Model loads",
    "workers": "Worker states",
    "shards": "Shards",
    "memory": "Memory & cache",
    "jobs": "Jobs",
    "run": "Run",
}
EVENT_STYLES = {
    "error": "bold red",
    "warning": "yellow",
    "oom": "red",
    "shard_requeued": "yellow",
    "cache_cleared": "magenta",
    "model_load": "green",
    "job_done": "bold green",
    "run_done": "bold",
}


def log_matches(event: ev.Event, worker: object, group: object) -> bool:
    """Does ``event`` pass the log filters (worker: None/'run'/int; group: None/LOG_GROUPS key)?"""
    if worker == "run" and event.worker is not None:
        return False
    if isinstance(worker, int) and event.worker != worker:
        return False
    return not (isinstance(group, str) and event.type not in LOG_GROUPS.get(group, ()))


def recent_text(event: ev.Event) -> Text:
    """A compact log line for the overview: time, who, what (the kind shows in the colour)."""
    who = f"w{event.worker}" if event.worker is not None else "run"
    return Text.assemble(
        (fmt_clock(event.ts), "dim"),
        " ",
        (f"{who:>3}", "bold"),
        " ",
        (log_description(event) or event.type, EVENT_STYLES.get(event.type, "")),
    )


def log_text(event: ev.Event) -> Text:
    who = f"w{event.worker}" if event.worker is not None else "run"
    kind = event.type
    return Text.assemble(
        (fmt_clock(event.ts), "dim"),
        " ",
        (f"{who:>3}", "bold"),
        " ",
        (f"{kind:<14}", EVENT_STYLES.get(kind, "")),
        " ",
        log_description(event),
    )


# -- completion -----------------------------------------------------------------------------------
def completion_text(view: RunView, error: str | None) -> Text:
    lines = summary_lines(view)
    status_style = {"complete": "bold green", "interrupted": "bold yellow"}.get(
        view.status, "bold red"
    )
    out = [Text(lines[0], style=status_style)]
    for line in lines[1:]:
        if line.startswith("DEMO"):
            out.append(Text(DEMO_BANNER, style="bold yellow"))
        elif line.startswith("    "):  # "    what: value" (an output file, features, dedup)
            label, _, value = line.strip().partition(": ")
            named = Path(value).name == label  # an output file: its path says it all
            out.append(Text.assemble("    " if named else f"    {label}: ", (value, "bold")))
        else:
            out.append(Text(line))
    for problem in view.errors[-3:]:
        out.append(Text(f"error: {problem}", style="red"))
    if error:
        out.append(Text(error, style="bold red"))
    return join_lines(out)
