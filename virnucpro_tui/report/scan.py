"""One pass over a job's results in input order, a block of sequences at a time: the regions
files are written as it goes, and what the figures and the page need is kept in bounded memory
(binned scores, the tracks and table rows of a capped number of sequences), whatever the number
of sequences. The counts and the histogram are taken from the block's columns; only the
sequences with a viral chunk (or asked for) are made objects."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from virnucpro_tui.core.chunking import chunk_spans
from virnucpro_tui.core.outputs import CALLS, SummaryTotals
from virnucpro_tui.core.regions import (
    REGIONS_TSV_HEADER,
    Region,
    one_chunk_region,
    sequence_regions,
)
from virnucpro_tui.core.result_blocks import VIRUS, ResultBlock
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

    def candidates(self, block: ResultBlock) -> list[int]:
        """The block's sequences that may enter, in input order: those asked for, or else the
        block's ``limit`` best called virus (whatever the other blocks hold, no other can)."""
        if self.wanted is not None:
            return [i for i, sid in enumerate(block.ids) if sid in self.wanted]
        virus = np.flatnonzero(block.calls == VIRUS)
        score = np.where(block.scored, block.max_virus_score, -1.0)[virus]
        best = np.lexsort((virus, -score, -block.viral_chunks[virus]))[: self.limit]
        return sorted(virus[best].tolist())

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
    picked, and each block of results (the viral sequences' filter)."""

    tsv: TextIO
    bed: TextIO
    picker: TrackPicker
    table: TrackPicker
    on_block: Callable[[ResultBlock], None] | None = None


def scan_job(
    blocks: Iterable[ResultBlock], chunk_length: int, region_gap: int, sinks: ScanSinks
) -> JobStats:
    """Write the regions of every sequence; count, bin and pick."""
    stats = JobStats()
    sinks.tsv.write(REGIONS_TSV_HEADER)
    for block in blocks:
        _count(stats, block)
        for i in np.flatnonzero(block.viral_chunks > 0).tolist():
            _add_regions(stats, block_regions(block, i, chunk_length, region_gap), sinks)
        for picker in (sinks.picker, sinks.table):
            for i in picker.candidates(block):
                regions = block_regions(block, i, chunk_length, region_gap)
                picker.consider(block.result(i), chunk_length, regions)
        if sinks.on_block is not None:
            sinks.on_block(block)
    stats.tracks = sinks.picker.tracks()
    return stats


def block_regions(block: ResultBlock, i: int, chunk_length: int, gap: int) -> list[Region]:
    """The viral regions of the block's sequence ``i``; a read's (one chunk, with frames) from
    the columns, without the sequence's objects."""
    sid = block.ids[i]
    length, chunks, with_frames, _, viral, _ = block.summary_fields(i)
    if not viral:
        return []
    if chunks == with_frames == 1 and length <= chunk_length:
        return [one_chunk_region(sid, length, chunk_length, block.first_chunk_virus(i))]
    return sequence_regions(sid, length, chunk_length, block.chunk_calls(i), gap)


HISTOGRAM_EDGES = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)


def _count(stats: JobStats, block: ResultBlock) -> None:
    stats.sequences += len(block)
    for call, n in zip(CALLS, np.bincount(block.calls, minlength=len(CALLS)).tolist(), strict=True):
        stats.calls[call] += n
    stats.chunks += int(block.chunks.sum())
    stats.chunks_with_frames += int(block.chunks_with_frames.sum())
    stats.viral_chunks += int(block.viral_chunks.sum())
    stats.frames += int(block.frames.sum())
    stats.histogram += np.histogram(block.p_virus.astype(np.float64), HISTOGRAM_EDGES)[0]
    stats.virus_frames += int(np.count_nonzero(block.p_virus > block.p_others))


def _add_regions(stats: JobStats, regions: list[Region], sinks: ScanSinks) -> None:
    for region in regions:
        sinks.tsv.write(region.tsv_row())
        sinks.bed.write(region.bed_row())
        stats.region_bases += region.length
        stats.partial_regions += not region.whole_sequence
    stats.regions += len(regions)
