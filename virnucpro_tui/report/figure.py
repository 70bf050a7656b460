"""The figures, drawn with matplotlib (the published tool's own choice; Agg, imported only when
a report is built, so the dashboard and the workers never load it).

``prediction.png``/``.svg`` redraw the published ``drew_fig.py`` better: one track per sequence
with each chunk's P(virus) at its place along the sequence, the 0.5 line and the viral regions
shaded; a capped number of tracks, so the figure stays readable on a million sequences.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from virnucpro_tui.report.scan import Track
from virnucpro_tui.report.timeline import Timeline

VIRUS = "#c62828"
OTHERS = "#1f3b73"
NO_FRAMES = "#9e9e9e"
REGION = "#ef9a9a"
MARKER_STYLE = {
    "cache clear": ("#00897b", ":"),
    "restart": ("#6a1b9a", "-"),
    "OOM split": ("#ef6c00", "--"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": 100,
        }
    )
    return plt


def _mark(fig: Any, title: str, partial: bool, demo: bool) -> None:
    notes = []
    if partial:
        notes.append("PARTIAL: the shards verified so far")
    if demo:
        notes.append("DEMO models: the scores are NOT biological predictions")
    fig.suptitle(
        title + ("\n" + " · ".join(notes) if notes else ""), fontsize=11, x=0.01, ha="left"
    )
    if partial:
        fig.text(
            0.5,
            0.5,
            "PARTIAL",
            fontsize=90,
            color="#000000",
            alpha=0.08,
            rotation=25,
            ha="center",
            va="center",
        )


def _kb(x: float, _pos: object = None) -> str:
    return f"{x / 1000:g} kb" if x >= 1000 else f"{x:g}"


def tracks_figure(
    tracks: Sequence[Track], title: str, partial: bool = False, demo: bool = False
) -> Any:
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    rows = max(1, len(tracks))
    fig, axes = plt.subplots(rows, 1, figsize=(11, 0.95 * rows + 1.5), squeeze=False)
    fig.subplots_adjust(
        left=0.06,
        right=0.98,
        top=1 - 0.95 / (0.95 * rows + 1.5),
        bottom=0.5 / (0.95 * rows + 1.5),
        hspace=0.9,
    )
    _mark(fig, title, partial, demo)
    if not tracks:
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, "no sequence called virus", ha="center", va="center", fontsize=12)
        return fig
    for ax, track in zip((row[0] for row in axes), tracks, strict=False):
        _draw_track(ax, track)
        ax.xaxis.set_major_formatter(FuncFormatter(_kb))
    axes[-1][0].set_xlabel("position along the sequence (bp); each segment is one chunk")
    return fig


def _draw_track(ax: Any, track: Track) -> None:
    for region in track.regions:
        ax.axvspan(region.start, region.end, color=REGION, alpha=0.35, lw=0)
    scored = [(s, e, p, v) for s, e, p, v in track.chunks if p is not None]
    for viral, color in ((True, VIRUS), (False, OTHERS)):
        sel = [(s, e, p) for s, e, p, v in scored if v == viral]
        if sel:
            arr = np.asarray(sel, dtype=np.float64)
            ax.hlines(arr[:, 2], arr[:, 0], arr[:, 1], colors=color, lw=2.4)
    empty = [(s, e) for s, e, p, _ in track.chunks if p is None]
    if empty:
        arr = np.asarray(empty, dtype=np.float64)
        ax.hlines(
            np.full(len(arr), 0.02), arr[:, 0], arr[:, 1], colors=NO_FRAMES, lw=1.2, linestyles=":"
        )
    ax.axhline(0.5, color="#616161", lw=0.8, ls="--")
    ax.set_xlim(0, max(track.length, 1))
    ax.set_ylim(0, 1.02)
    ax.set_yticks([0, 0.5, 1])
    ax.tick_params(labelsize=7)
    score = "NA" if track.max_virus_score is None else f"{track.max_virus_score:.3f}"
    ax.set_title(
        f"{track.sequence_id}   {track.length:,} bp · {track.call} · "
        f"{track.viral_chunks}/{track.chunks_with_frames} viral chunks · max P(virus) {score}",
        loc="left",
        fontsize=8,
        pad=3,
    )


def histogram_figure(histogram: np.ndarray, partial: bool = False, demo: bool = False) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    fig.subplots_adjust(left=0.12, right=0.97, top=0.78, bottom=0.18)
    edges = np.linspace(0, 1, len(histogram) + 1)
    colors = [VIRUS if left >= 0.5 else OTHERS for left in edges[:-1]]
    ax.bar(edges[:-1], histogram, width=np.diff(edges), align="edge", color=colors, lw=0)
    ax.axvline(0.5, color="#616161", lw=0.8, ls="--")
    ax.set_xlabel("P(virus) of a frame")
    ax.set_ylabel("frames")
    ax.set_xlim(0, 1)
    _mark(fig, "P(virus) over frames", partial, demo)
    return fig


def timeline_figure(timeline: Timeline, partial: bool = False) -> Any:
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True)
    fig.subplots_adjust(left=0.07, right=0.8, top=0.88, bottom=0.11, hspace=0.25)
    for w, (t, rate) in timeline.throughput.items():
        top.plot(t, rate, marker=".", ms=3, lw=1, label=timeline.labels.get(w, f"worker {w}"))
    top.set_ylabel("frames/s")
    top.set_title("throughput per worker (each shard's frames / seconds)", loc="left", fontsize=9)
    for w, (t, gib) in timeline.memory.items():
        kind = timeline.memory_kind.get(w, "cuda")
        top_label = timeline.labels.get(w, f"worker {w}")
        bottom.plot(t, gib, lw=1, label=f"{top_label} ({'GPU' if kind == 'cuda' else 'process'})")
    bottom.set_ylabel("reserved GiB")
    bottom.set_xlabel("seconds since the run started")
    bottom.set_title(
        "memory per worker (GPU memory reserved by PyTorch; a CPU worker's process)",
        loc="left",
        fontsize=9,
    )
    for ax in (top, bottom):
        labelled: set[str] = set()
        for m in timeline.markers:
            color, style = MARKER_STYLE[m.kind]
            label = None if m.kind in labelled else m.kind
            ax.axvline(m.t, color=color, ls=style, lw=1, label=label)
            labelled.add(m.kind)
    for ax in (top, bottom):
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    _mark(fig, "Workers over time", partial, False)
    return fig


def to_png(fig: Any, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    _close(fig)
    return buf.getvalue()


def to_png_and_svg(fig: Any) -> tuple[bytes, bytes]:
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
    fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    _close(fig)
    return png.getvalue(), svg.getvalue()


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
