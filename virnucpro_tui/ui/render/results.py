"""The results: frame and sequence counts, the score histogram, and the completion summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text

from virnucpro_tui.run.describe import (
    dedup_text,
    fmt_bytes,
    percent,
    plural,
    summary_lines,
)
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui.render.text import SPARKS, join_lines, labelled

DEMO_BANNER = "DEMO MODELS — scores are not biological predictions"
DEMO_SHORT = "DEMO — not biological predictions"  # where the banner would wrap


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
            Text(plural(seqs, "sequence")),
            Text(f"{viral:,} called virus ({percent(viral, seqs)})", style="bold red"),
            Text(plural(chunks, "chunk")),
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
        notice = DEMO_BANNER if cell_len(DEMO_BANNER) <= width else DEMO_SHORT
        lines.append(Text(notice, style="bold yellow"))
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
