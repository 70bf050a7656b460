"""Tables fitted to a width (columns shortened, then dropped in order, never cut silently):
the job queue and the best scores."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.cells import cell_len
from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.describe import (
    fmt_count,
)
from virnucpro_tui.run.view import JobView, RunView
from virnucpro_tui.ui.render.text import bar

CALL_RULE = (
    "a sequence is called virus when at least half of its chunks with frames are viral; a "
    "chunk is viral when its best frame's P(virus) is at least its best P(others)"
)


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
