"""One pass over a job's results in input order: the regions files are written as it goes, and
what the figures and the page need is kept in bounded memory (binned scores, the tracks and
table rows of a capped number of sequences), whatever the number of sequences."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from virnucpro_tui.core.chunking import chunk_spans
from virnucpro_tui.core.outputs import Prediction, SequenceSummary, SummaryTotals
from virnucpro_tui.core.regions import REGIONS_TSV_HEADER, Region, sequence_regions
from virnucpro_tui.core.results import SequenceResult

HISTOGRAM_BINS = 50  # P(virus) over frames, bins of 0.02
TOP_TRACKS = 20  # sequences in the figure by default
TOP_TABLE = 100  # rows of the page's table of viral sequences


@dataclass(frozen=True)
class Track:
    """One sequence as drawn: each chunk's span and P(virus) (None without frames) and its
    viral regions."""

    sequence_id: str
    length: int
    call: str
    viral_chunks: int
    chunks_with_frames: int
    max_virus_score: float | None
    chunks: tuple[tuple[int, int, float | None, bool], ...]  # start, end, P(virus), viral
    regions: tuple[Region, ...]

    @property
    def rank(self) -> tuple[int, int, float]:
        """The figure's default order: called virus, then most viral chunks, then score."""
        score = -1.0 if self.max_virus_score is None else self.max_virus_score
        return (self.call == "virus", self.viral_chunks, score)


@dataclass
class JobStats(SummaryTotals):
    """A job's totals, with its viral regions and what its figures and page show."""

    regions: int = 0
    region_bases: int = 0
    partial_regions: int = 0  # regions that do not cover their whole sequence
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_BINS, np.int64))
    tracks: list[Track] = field(default_factory=list)  # best first (or in the asked order)


class TrackPicker:
    """Keeps the ``limit`` best-ranked tracks (a heap), or exactly the sequences asked for."""

    def __init__(self, limit: int = TOP_TRACKS, wanted: list[str] | None = None) -> None:
        self.limit = limit
        self.wanted = {sid: n for n, sid in enumerate(wanted)} if wanted else None
        self.heap: list[tuple[tuple[int, int, float], int, Track]] = []
        self.found: dict[str, Track] = {}
        self.seen = 0

    def consider(self, result: SequenceResult, chunk_length: int, regions: list[Region]) -> None:
        self.seen += 1
        sid = result.summary.id
        if self.wanted is not None:
            if sid in self.wanted:
                self.found[sid] = make_track(result, chunk_length, regions)
            return
        s = result.summary
        score = -1.0 if s.max_virus_score is None else float(s.max_virus_score)
        key = (s.call == "virus", s.viral_chunks, score)
        if len(self.heap) >= self.limit and key <= self.heap[0][0]:
            return  # most sequences: no track is built for them
        item = (key, -self.seen, make_track(result, chunk_length, regions))
        if len(self.heap) < self.limit:
            heapq.heappush(self.heap, item)
        else:
            heapq.heapreplace(self.heap, item)

    def tracks(self) -> list[Track]:
        if self.wanted is not None:
            return sorted(self.found.values(), key=lambda t: self.wanted[t.sequence_id])  # type: ignore[index]
        return [t for _, _, t in sorted(self.heap, reverse=True) if t.call == "virus"]

    def missing(self) -> list[str]:
        return [sid for sid in self.wanted or {} if sid not in self.found]


def make_track(result: SequenceResult, chunk_length: int, regions: list[Region]) -> Track:
    s = result.summary
    chunks = tuple(
        (start, end, float(c.max_virus), c.is_virus)
        if (c := result.chunks.get(k))
        else (start, end, None, False)
        for k, (start, end) in enumerate(chunk_spans(s.length, chunk_length))
    )
    return Track(
        s.id,
        s.length,
        s.call,
        s.viral_chunks,
        s.chunks_with_frames,
        None if s.max_virus_score is None else float(s.max_virus_score),
        chunks,
        tuple(regions),
    )


@dataclass
class ScanSinks:
    """Where one pass over a job's results goes: the regions files, the tracks and table rows
    picked, and each sequence's summary row (the viral sequences' filter)."""

    tsv: TextIO
    bed: TextIO
    picker: TrackPicker
    table: TrackPicker
    on_sequence: Callable[[SequenceSummary], None] | None = None


def scan_job(
    results: Iterable[SequenceResult], chunk_length: int, region_gap: int, sinks: ScanSinks
) -> JobStats:
    """Write the regions of every sequence; count, bin and pick."""
    stats = JobStats()
    sinks.tsv.write(REGIONS_TSV_HEADER)
    bins = ScoreBins(stats)
    for result in results:
        s = result.summary
        regions = (
            sequence_regions(s.id, s.length, chunk_length, result.chunks, region_gap)
            if s.viral_chunks
            else []
        )
        if regions:
            _add_regions(stats, regions, sinks)
        call = stats.add(s)
        bins.add(result.frames)
        if call == "virus" or sinks.picker.wanted is not None:
            sinks.picker.consider(result, chunk_length, regions)
        if call == "virus":
            sinks.table.consider(result, chunk_length, regions)
        if sinks.on_sequence is not None:
            sinks.on_sequence(s)
    bins.flush()
    stats.tracks = sinks.picker.tracks()
    return stats


class ScoreBins:
    """The frames' scores, binned and counted a block at a time with numpy (a per-frame
    comparison of numpy scalars is the slow way)."""

    BLOCK = 65536
    EDGES = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)

    def __init__(self, stats: JobStats) -> None:
        self.stats = stats
        self.virus: list[np.float32] = []
        self.others: list[np.float32] = []

    def add(self, frames: list[Prediction]) -> None:
        for p in frames:
            self.virus.append(p.p_virus)
            self.others.append(p.p_others)
        if len(self.virus) >= self.BLOCK:
            self.flush()

    def flush(self) -> None:
        virus = np.array(self.virus, np.float32)
        others = np.array(self.others, np.float32)
        self.stats.histogram += np.histogram(virus.astype(np.float64), self.EDGES)[0]
        self.stats.virus_frames += int(np.count_nonzero(virus > others))
        self.virus.clear()
        self.others.clear()


def _add_regions(stats: JobStats, regions: list[Region], sinks: ScanSinks) -> None:
    for region in regions:
        sinks.tsv.write(region.tsv_row())
        sinks.bed.write(region.bed_row())
        stats.region_bases += region.length
        stats.partial_regions += not region.whole_sequence
    stats.regions += len(regions)
