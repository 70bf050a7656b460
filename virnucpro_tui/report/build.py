"""Building a run's report files (docs/outputs.md): per input ``viral_sequences.fa``,
``viral_regions.tsv``/``.bed`` and ``prediction.png``/``.svg``, and ``report.html`` at the top.

Every file is written under a temporary name and all are renamed into place only once all are
complete: bad input or an interruption leaves nothing half-written (and nothing new at all).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from virnucpro_tui.core.atomic import PartialFile, atomic_write_text
from virnucpro_tui.core.fasta import iter_sequences
from virnucpro_tui.core.outputs import (
    FIGURE_PNG_FILE,
    FIGURE_SVG_FILE,
    HIGHESTSCORE_FILE,
    JOB_REPORT_FILES,
    PREDICTION_FILE,
    REGIONS_BED_FILE,
    REGIONS_TSV_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    VIRAL_SEQUENCES_FILE,
)
from virnucpro_tui.core.results import ResultsError
from virnucpro_tui.core.viral import InputMismatchError, ViralSequenceFilter
from virnucpro_tui.errors import InputError
from virnucpro_tui.report import figure, html
from virnucpro_tui.report.data import JobSource, RunSource, load_run
from virnucpro_tui.report.scan import (
    TOP_TABLE,
    TOP_TRACKS,
    JobStats,
    ScanSinks,
    TrackPicker,
    scan_job,
)
from virnucpro_tui.report.timeline import build_timeline
from virnucpro_tui.run.describe import plural
from virnucpro_tui.run.rundir import PROVENANCE

PARTIAL_DIR = "report-partial"  # --partial's default --out, inside the run directory


@dataclass(frozen=True)
class ReportOptions:
    out: Path | None = None  # default: the run directory (PARTIAL_DIR in it with --partial)
    partial: bool = False
    sequences: tuple[str, ...] | None = None  # the tracks to draw (default: the top viral)
    region_gap: int = 0
    only_job: str | None = None  # rebuild this job's files; the others' (built already) are read


class Staging:
    """Files written under temporary names, renamed into place together by ``commit``."""

    def __init__(self) -> None:
        self.files: list[PartialFile] = []
        self.texts: list[TextIO] = []

    def text(self, path: Path) -> TextIO:
        partial = PartialFile(path)
        self.files.append(partial)
        # a write-only stream on the file: a text wrapper on PartialFile's handle (readable
        # too) resets its decoder at every write, which doubles the cost of a line
        text = open(partial.fh.fileno(), "w", encoding="utf-8", newline="\n", closefd=False)  # noqa: SIM115
        self.texts.append(text)
        return text

    def data(self, path: Path, data: bytes | str) -> None:
        partial = PartialFile(path)
        self.files.append(partial)
        partial.fh.write(data.encode("utf-8") if isinstance(data, str) else data)

    def commit(self) -> list[Path]:
        for text in self.texts:
            text.close()  # flushed; the file stays open (closefd=False) for commit's fsync
        for partial in self.files:
            partial.commit()
        return [p.target for p in self.files]

    def abort(self) -> None:
        for text in self.texts:
            with contextlib.suppress(OSError, ValueError):
                text.close()
        for partial in self.files:
            partial.abort()


def build_report(
    run_dir: Path, options: ReportOptions, finished_jobs: dict[str, float] | None = None
) -> list[Path]:
    """Build the report of the run at ``run_dir``; returns the files written, report.html
    first. Raises InputError (nothing written) on bad input, RunNotFinishedError on an
    unfinished run without ``partial``."""
    if options.region_gap < 0:
        raise InputError("--region-gap: a number of chunks, 0 or more")
    source = load_run(run_dir, options.partial, finished_jobs)
    # a corrupt sequence_summary.tsv raises during the pass: nothing is renamed into place
    out_root = options.out or (run_dir / PARTIAL_DIR if source.partial else run_dir)
    single = len(source.manifest["inputs"]) == 1
    for job in source.jobs:
        _input_path(job)  # every input is readable before anything is written
    staging = Staging()
    try:
        sections = [
            _build_job(
                source, job, out_root if single else out_root / job.name, out_root, options, staging
            )
            for job in source.jobs
        ]
        _check_sequences_found(options, sections)
        staging.data(out_root / REPORT_FILE, html.render_page(_page(source, sections)))
        written = staging.commit()
    except BaseException:
        staging.abort()
        raise
    if out_root.resolve() == run_dir.resolve():
        _list_in_provenance(source, written)
    return [written[-1], *written[:-1]]


def _input_path(job: JobSource) -> Path:
    raw = job.input.get("path")
    if not raw or not Path(raw).is_file():
        raise InputError(
            f"{raw or job.name}: the input of job {job.name} is not there any more; "
            f"{VIRAL_SEQUENCES_FILE} is made from it (put it back at that path)"
        )
    return Path(raw)


def _build_job(
    source: RunSource,
    job: JobSource,
    job_out: Path,
    out_root: Path,
    options: ReportOptions,
    staging: Staging,
) -> html.JobSection:
    wanted = list(options.sequences) if options.sequences else None
    picker = TrackPicker(TOP_TRACKS, wanted)
    table = TrackPicker(TOP_TABLE)
    existing = job_out / FIGURE_PNG_FILE
    rebuild = options.only_job in (None, job.name) or not existing.is_file()
    with contextlib.ExitStack() as stack:
        if rebuild:
            tsv = staging.text(job_out / REGIONS_TSV_FILE)
            bed = staging.text(job_out / REGIONS_BED_FILE)
            viral = ViralSequenceFilter(
                iter_sequences(_input_path(job)),
                staging.text(job_out / VIRAL_SEQUENCES_FILE),
            )
        else:  # built when the job finished: only its numbers are needed again
            tsv = bed = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
            viral = None
        sinks = ScanSinks(tsv, bed, picker, table, viral.add if viral else None)
        try:
            stats = scan_job(source.blocks(job), source.chunk_length, options.region_gap, sinks)
            if viral is not None:
                viral.finish(prefix=not job.finished)  # --partial: the records scored so far
        except (ResultsError, InputMismatchError, UnicodeDecodeError) as exc:
            raise InputError(f"job {job.name}: {exc}") from None
    png = (
        _figures(source, job, job_out, stats, wanted, staging) if rebuild else existing.read_bytes()
    )
    histogram = figure.to_png(
        figure.histogram_figure(stats.histogram, not job.finished, source.demo)
    )
    return html.JobSection(
        name=job.name,
        stats=stats,
        input=job.input,
        seconds=job.seconds,
        histogram_png=histogram,
        tracks_png=png,
        table=table.tracks(),
        links=_links(job, job_out, out_root),
        finished=job.finished,
        missing_sequences=picker.missing(),
    )


def _figures(
    source: RunSource,
    job: JobSource,
    job_out: Path,
    stats: JobStats,
    wanted: list[str] | None,
    staging: Staging,
) -> bytes:
    """prediction.png and prediction.svg; returns the PNG (the page shows it too)."""
    title = (
        f"{job.name}: the sequences asked for"
        if wanted
        else f"{job.name}: the {plural(len(stats.tracks), 'sequence')} called virus with the most "
        "viral chunks"
    )
    png, svg = figure.to_png_and_svg(
        figure.tracks_figure(stats.tracks, title, partial=not job.finished, demo=source.demo)
    )
    staging.data(job_out / FIGURE_PNG_FILE, png)
    staging.data(job_out / FIGURE_SVG_FILE, svg)
    return png


def _links(job: JobSource, job_out: Path, out_root: Path) -> dict[str, str]:
    def rel(path: Path) -> str:
        return os.path.relpath(path, out_root).replace(os.sep, "/")

    links = {
        name: rel(job_out / name)
        for name in (
            VIRAL_SEQUENCES_FILE,
            REGIONS_TSV_FILE,
            REGIONS_BED_FILE,
            FIGURE_PNG_FILE,
            FIGURE_SVG_FILE,
        )
    }
    if job.finished:
        for name in (SUMMARY_FILE, PREDICTION_FILE, HIGHESTSCORE_FILE, PROVENANCE):
            links[name] = rel(job.results_dir / name)
    return links


def _check_sequences_found(options: ReportOptions, sections: list[html.JobSection]) -> None:
    if not options.sequences:
        return
    everywhere_missing = set(options.sequences)
    for section in sections:
        everywhere_missing &= set(section.missing_sequences)
    if everywhere_missing:
        names = ", ".join(sorted(everywhere_missing)[:5])
        raise InputError(f"--sequences: not in any input of the run: {names}")


def _page(source: RunSource, sections: list[html.JobSection]) -> html.RunPage:
    timeline = build_timeline(source.events)
    markers = {
        k: sum(m.kind == k for m in timeline.markers)
        for k in ("cache clear", "restart", "OOM split")
    }
    note = (
        "From events.jsonl: each shard's frames/s when it finished, and the memory reported by each "
        f"worker; marked: {markers['cache clear']} cache clears, {markers['restart']} restarts, "
        f"{markers['OOM split']} OOM splits."
    )
    timeline_png = (
        None if timeline.empty else figure.to_png(figure.timeline_figure(timeline, source.partial))
    )
    manifest = source.manifest
    done = {s.name for s in sections}
    return html.RunPage(
        title=source.root.name,
        root=str(source.root),
        status=source.status,
        demo=source.demo,
        notice=manifest.get("notice"),
        partial=source.partial,
        settings=dict(manifest.get("settings", {})),
        models=dict(manifest.get("models", {})),
        versions=dict(manifest.get("versions", {})),
        devices=list(manifest.get("devices", [])),
        seconds=source.seconds or _sum_seconds(sections),
        timeline_png=timeline_png,
        timeline_note=note if timeline_png else "No worker events in events.jsonl.",
        jobs=sections,
        pending_jobs=[str(i["job"]) for i in manifest["inputs"] if i["job"] not in done],
    )


def _sum_seconds(sections: list[html.JobSection]) -> float | None:
    seconds = [s.seconds for s in sections if s.seconds is not None]
    return max(seconds) if seconds else None


def _list_in_provenance(source: RunSource, written: list[Path]) -> None:
    """Name the report's files in each job's provenance.json (relative to the job's folder)."""
    for job in source.jobs:
        path = job.results_dir / PROVENANCE
        if not job.finished or not path.is_file():
            continue
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        mine = [p for p in written if p.parent == job.results_dir or p.name == REPORT_FILE]
        if not any(p.name in JOB_REPORT_FILES for p in mine):
            continue  # not rebuilt this time (only_job): its list stands
        data["report_files"] = {
            p.name: os.path.relpath(p, job.results_dir).replace(os.sep, "/")
            for p in sorted(mine, key=lambda p: p.name != REPORT_FILE)
        }
        atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
