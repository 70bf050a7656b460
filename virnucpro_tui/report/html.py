"""``report.html``: one self-contained page (inline CSS, images as base64 PNG, a few lines of
vanilla JS to sort tables; no network, CDN or web fonts), one section per input
(docs/outputs.md#reporthtml). Numbers carry ``data-field``/``data-value`` so tests read them."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from virnucpro_tui.report.scan import JobStats, Track

CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#e3e7ee;--bg:#f6f8fb;--virus:#c62828;--others:#1f3b73;--accent:#0d47a1}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#102a43;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#bcccdc;font-size:13px;margin-top:4px;word-break:break-all}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;font-size:13px}
nav a{color:var(--accent);text-decoration:none;margin-right:18px}
main{max-width:1280px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin:20px 0;padding:16px 22px}
h2{font-size:18px;margin:4px 0 12px}h3{font-size:15px;margin:18px 0 8px;color:#243b53}
.banner{padding:10px 32px;font-weight:600}.demo{background:#fff3cd;color:#7a4b00;border-bottom:1px solid #f0d58c}
.partial{background:#fde2e1;color:#8a1c1c;border-bottom:1px solid #f5b5b3}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:10px;margin:6px 0 12px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:#fbfcfe}
.card .v{font-size:20px;font-weight:600}.card .k{color:var(--muted);font-size:12px}
.card.virus .v{color:var(--virus)}.card.others .v{color:var(--others)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f0f3f8;font-weight:600;white-space:nowrap}th.sort{cursor:pointer}th.sort:after{content:" \\2195";color:#9aa5b1}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:190px;background:none;color:var(--muted);font-weight:500}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
figure{margin:10px 0}figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:12px}
.files a{margin-right:14px}.muted{color:var(--muted)}.scroll{max-height:520px;overflow:auto}
footer{color:var(--muted);font-size:12px;text-align:center;padding:20px}
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function(t){
  t.querySelectorAll("th").forEach(function(th,i){th.classList.add("sort");th.addEventListener("click",function(){
    var b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.asc!=="1";th.dataset.asc=asc?"1":"0";
    rows.sort(function(x,y){var a=x.cells[i].dataset.value||x.cells[i].textContent,c=y.cells[i].dataset.value||y.cells[i].textContent;
      var n=parseFloat(a)-parseFloat(c);if(!isNaN(n))return asc?n:-n;return asc?a.localeCompare(c):c.localeCompare(a);});
    rows.forEach(function(r){b.appendChild(r);});});});});
"""


@dataclass
class JobSection:
    name: str
    stats: JobStats
    input: dict[str, Any]
    seconds: float | None
    histogram_png: bytes
    tracks_png: bytes
    table: list[Track]
    links: dict[str, str]  # label -> relative href
    finished: bool = True
    missing_sequences: list[str] = field(default_factory=list)


@dataclass
class RunPage:
    title: str
    root: str
    status: str
    demo: bool
    notice: str | None
    partial: bool
    settings: dict[str, Any]
    models: dict[str, Any]
    versions: dict[str, Any]
    devices: list[str]
    seconds: float | None
    timeline_png: bytes | None
    timeline_note: str
    jobs: list[JobSection]
    pending_jobs: list[str] = field(default_factory=list)


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def img(png: bytes, alt: str, field_name: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img data-figure="{e(field_name)}" alt="{e(alt)}" src="data:image/png;base64,{data}">'


def card(label: str, value: int | float | str, field_name: str, cls: str = "") -> str:
    shown = f"{value:,}" if isinstance(value, int) else str(value)
    return (
        f'<div class="card {cls}"><div class="v" data-field="{field_name}" data-value="{e(value)}">'
        f'{e(shown)}</div><div class="k">{e(label)}</div></div>'
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def render_page(page: RunPage) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{'PARTIAL ' if page.partial else ''}virnucpro-tui report: {e(page.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(page),
        _nav(page),
        "<main>",
        _run_section(page),
        *(_job_section(job, page) for job in page.jobs),
        "</main>",
        f"<footer>virnucpro-tui {e(page.versions.get('virnucpro-tui', ''))} · made "
        f"{e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))} · a self-contained page: no network needed</footer>",
        f"<script>{SORT_JS}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _header(page: RunPage) -> str:
    out = [
        f"<header><h1>{'PARTIAL · ' if page.partial else ''}virnucpro-tui report</h1>",
        f'<div class="sub">{e(page.root)} · status <b data-field="status">{e(page.status)}</b></div></header>',
    ]
    if page.partial:
        out.append(
            '<div class="banner partial" data-banner="partial">PARTIAL: the run has not finished; '
            "this page shows the sequences whose shards were verified so far.</div>"
        )
    if page.demo:
        notice = page.notice or "Demo models: scores are NOT biological predictions."
        out.append(
            f'<div class="banner demo" data-banner="demo">DEMO: {e(notice)} Use the published '
            "models for real predictions.</div>"
        )
    return "\n".join(out)


def _nav(page: RunPage) -> str:
    links = ['<a href="#run">Run</a>'] + [
        f'<a href="#job-{e(j.name)}">{e(j.name)}</a>' for j in page.jobs
    ]
    return f"<nav>{''.join(links)}</nav>"


def _run_section(page: RunPage) -> str:
    frames = sum(j.stats.frames for j in page.jobs)
    rate = f"{frames / page.seconds:,.1f}" if page.seconds else "unknown"
    rows = [
        (
            "inputs",
            ", ".join(j.name for j in page.jobs)
            + (f" (not finished: {', '.join(page.pending_jobs)})" if page.pending_jobs else ""),
        ),
        ("devices", ", ".join(page.devices) or "unknown"),
        ("precision", page.settings.get("precision", "unknown")),
        ("chunk length", f"{page.settings.get('chunk_length', '?')} bp"),
        ("shard size", page.settings.get("shard_size", "?")),
        ("identical frames once", "yes" if page.settings.get("dedup", True) else "no (--no-dedup)"),
    ]
    models = "".join(
        f"<tr><td>{e(name)}</td><td class='mono'>{e(m.get('path', ''))}</td>"
        f"<td class='mono'>{e(m.get('sha256', ''))}</td></tr>"
        for name, m in page.models.items()
        if isinstance(m, dict)
    )
    versions = ", ".join(f"{k} {v}" for k, v in page.versions.items() if v)
    figure = (
        f"<figure>{img(page.timeline_png, 'throughput and memory per worker', 'timeline')}"
        f"<figcaption>{e(page.timeline_note)}</figcaption></figure>"
        if page.timeline_png
        else f'<p class="muted">{e(page.timeline_note)}</p>'
    )
    return (
        '<section id="run"><h2>Run</h2><div class="cards">'
        + card("frames scored", frames, "run-frames")
        + card("wall time", duration(page.seconds), "run-wall")
        + card("frames/s", rate, "run-rate")
        + card("inputs", len(page.jobs), "run-inputs")
        + "</div>"
        + _kv(rows)
        + "<h3>Models</h3><table><thead><tr><th>model</th><th>path</th><th>SHA-256</th></tr></thead>"
        + f"<tbody>{models}</tbody></table>"
        + f'<p class="muted">versions: {e(versions)}</p>'
        + "<h3>Workers over time</h3>"
        + figure
        + "</section>"
    )


def _kv(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _job_section(job: JobSection, page: RunPage) -> str:
    s = job.stats
    rate = f"{s.frames / job.seconds:,.1f}" if job.seconds else "unknown"
    inp = job.input
    cards = (
        card("sequences", s.sequences, "sequences")
        + card("called virus", s.calls["virus"], "virus", "virus")
        + card("called others", s.calls["others"], "others", "others")
        + card("no stop-free frame", s.calls["no_frames"], "no_frames")
        + card("frames", s.frames, "frames")
        + card("viral regions", s.regions, "regions")
        + card("wall time", duration(job.seconds), "wall")
        + card("frames/s", rate, "rate")
    )
    rows = [
        ("input", inp.get("path", "?")),
        ("SHA-256", inp.get("sha256", "?")),
        ("size", f"{inp.get('bytes', 0):,} bytes, {inp.get('records', s.sequences):,} records"),
        (
            "chunks",
            f"{s.chunks:,} ({s.chunks - s.chunks_with_frames:,} without a stop-free frame), {s.viral_chunks:,} viral",
        ),
        ("virus frames", f"{s.virus_frames:,} of {s.frames:,}"),
        (
            "viral regions",
            f"{s.regions:,} ({s.partial_regions:,} inside a longer sequence; {s.region_bases:,} bp)",
        ),
    ]
    partial = (
        ' <span class="muted">(PARTIAL: verified shards so far)</span>' if not job.finished else ""
    )
    missing = (
        f'<p class="muted">not in this input: {e(", ".join(job.missing_sequences))}</p>'
        if job.missing_sequences
        else ""
    )
    return (
        f'<section id="job-{e(job.name)}" data-job="{e(job.name)}"><h2>{e(job.name)}{partial}</h2>'
        f'<div class="cards">{cards}</div>{_kv(rows)}'
        f'<h3>Files</h3><p class="files">{_links(job.links)}</p>'
        "<h3>P(virus) over frames</h3>"
        f"<figure>{img(job.histogram_png, 'histogram of P(virus)', 'histogram')}"
        "<figcaption>Frames binned by P(virus) (bins of 0.02); red: called virus.</figcaption></figure>"
        "<h3>Sequences along their length</h3>"
        f"<figure>{img(job.tracks_png, 'P(virus) per chunk along each sequence', 'tracks')}"
        "<figcaption>One track per sequence: each chunk's P(virus) (the highest of its frames) at its "
        "place, red when the chunk is viral, blue otherwise, grey dots where a chunk has no stop-free "
        "frame; viral regions shaded. Also as prediction.png and prediction.svg.</figcaption></figure>"
        f"{missing}"
        f"<h3>Top sequences called virus</h3>{_table(job.table)}"
        "</section>"
    )


def _links(links: dict[str, str]) -> str:
    return " ".join(f'<a href="{e(href)}">{e(label)}</a>' for label, href in links.items())


def _table(tracks: list[Track]) -> str:
    if not tracks:
        return '<p class="muted">No sequence called virus.</p>'
    rows = []
    for t in tracks:
        regions = "; ".join(f"{r.start + 1:,}-{r.end:,}" for r in t.regions[:8])
        if len(t.regions) > 8:
            regions += f"; … {len(t.regions) - 8} more"
        score = "NA" if t.max_virus_score is None else f"{t.max_virus_score:.4f}"
        rows.append(
            f"<tr><td class='mono'>{e(t.sequence_id)}</td><td class='num' data-value='{t.length}'>{t.length:,}</td>"
            f"<td class='num' data-value='{t.viral_chunks}'>{t.viral_chunks}/{t.chunks_with_frames}</td>"
            f"<td class='num'>{score}</td><td class='num'>{len(t.regions)}</td><td>{e(regions)}</td></tr>"
        )
    return (
        '<div class="scroll"><table class="sortable" data-table="top"><thead><tr><th>Sequence_ID</th>'
        '<th class="num">length</th><th class="num">viral chunks</th><th class="num">max P(virus)</th>'
        '<th class="num">regions</th><th>regions (1-based)</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></div>"
    )
