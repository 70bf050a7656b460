"""Building blocks of every widget's text: packed segments, labelled lines, bars, sparklines,
wrapped words, and a renderable as plain text. Meaning never rests on colour alone (NO_COLOR,
256-colour terminals): bars use distinct glyphs."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.text import Text

SPARKS = "▁▂▃▄▅▆▇█"
# The glyphs of every bar, in one place: the bars draw with them and the help explains them.
FILLED, RESERVED, OTHERS, FREE = "█", "▓", "▒", "░"
LABEL_WIDTH = 8


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


def plain(renderable: RenderableType, width: int) -> str:
    """What ``renderable`` shows at ``width`` columns, as plain text (no trailing spaces)."""
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    console.print(renderable, crop=True)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())
