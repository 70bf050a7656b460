"""One sequence's track in the terminal: P(virus) of each chunk along the sequence as block
characters (red: a viral chunk, blue: not), the 0.5 line, the viral regions underneath
(docs/outputs.md#predictionpng-and-predictionsvg, drawn in text)."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.report.scan import Track

BLOCKS = " ▁▂▃▄▅▆▇█"
ROWS = 4  # the plot's height in lines: 32 levels of P(virus)
AXIS = 5  # the width of the left labels ("1.0 ┤")


def _columns(track: Track, width: int) -> list[tuple[float | None, bool, bool]]:
    """Per column: the highest P(virus) of the chunks it covers (None: no scored chunk), whether
    one of them is viral, and whether it lies in a viral region."""
    per = max(track.length, 1) / width
    out = []
    for c in range(width):
        lo, hi = c * per, (c + 1) * per
        chunks = [ch for ch in track.chunks if ch[0] < hi and ch[1] > lo]
        scores = [ch[2] for ch in chunks if ch[2] is not None]
        viral = any(ch[3] for ch in chunks)
        region = any(r.start < hi and r.end > lo for r in track.regions)
        out.append((max(scores) if scores else None, viral, region))
    return out


def track_text(track: Track, width: int) -> Text:
    """The track in ``width`` cells: a title, ROWS lines of blocks, the regions, a scale."""
    plot = max(10, width - AXIS)
    columns = _columns(track, plot)
    score = "NA" if track.max_virus_score is None else f"{track.max_virus_score:.3f}"
    text = Text()
    text.append(f"{track.sequence_id}", style="bold")
    text.append(
        f"  {track.length:,} bp · {track.call} · {track.viral_chunks}/{track.chunks_with_frames} "
        f"viral chunks · max P(virus) {score}\n"
    )
    for row in range(ROWS - 1, -1, -1):
        label = {ROWS - 1: "1.0 ┤", ROWS // 2: "0.5 ┤", 0: "  0 ┤"}.get(row, "    │")
        text.append(label, style="dim")
        for p, viral, _ in columns:
            if p is None:  # no stop-free frame: nothing scored here
                text.append("·" if row == 0 else ("┈" if row == ROWS // 2 else " "), style="dim")
                continue
            fill = min(8, max(0, round(p * ROWS * 8) - 8 * row))
            if fill == 0 and row == ROWS // 2:
                text.append("┈", style="dim")  # the 0.5 line, where no bar covers it
            else:
                text.append(BLOCKS[fill], style="red" if viral else "blue")
        text.append("\n")
    text.append("     ")
    for _, _, region in columns:
        text.append("━" if region else " ", style="red")
    end = f"{track.length:,} bp"
    text.append("\n     0" + end.rjust(plot - 1), style="dim")
    return text
