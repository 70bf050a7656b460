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
import numpy.typing as npt

from virnucpro_tui.core.chunking import chunk_spans, single_chunk
from virnucpro_tui.core.outputs import CALLS, SummaryTotals
from virnucpro_tui.core.regions import (
    REGIONS_TSV_HEADER,
    Region,
    read_region_rows,
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
        _write_regions(stats, block, chunk_length, region_gap, sinks)
        for picker in (sinks.picker, sinks.table):
            for i in picker.candidates(block):
                regions = block_regions(block, i, chunk_length, region_gap)
                picker.consider(block.result(i), chunk_length, regions)
        if sinks.on_block is not None:
            sinks.on_block(block)
    stats.tracks = sinks.picker.tracks()
    return stats


def block_regions(block: ResultBlock, i: int, chunk_length: int, gap: int) -> list[Region]:
    """The viral regions of the block's sequence ``i``."""
    length, _, _, _, viral, _ = block.summary_fields(i)
    if not viral:
        return []
    return sequence_regions(block.ids[i], length, chunk_length, block.chunk_calls(i), gap)


def _write_regions(
    stats: JobStats, block: ResultBlock, chunk_length: int, gap: int, sinks: ScanSinks
) -> None:
    """The regions of the block's sequences with a viral chunk, in input order. The reads' (one
    chunk, with frames) are made from the columns a block at a time: no object per read."""
    viral = np.flatnonzero(block.viral_chunks > 0)
    is_read = (block.chunks == 1) & (block.chunks_with_frames == 1)
    is_read = (is_read & single_chunk(block.length, chunk_length))[viral]
    reads = viral[is_read]
    tsv, bed = read_region_rows(
        [block.ids[i] for i in reads.tolist()],
        block.length[reads].tolist(),
        block.first_chunk_virus(reads),
    )
    stats.regions += len(reads)
    stats.region_bases += int(block.length[reads].sum())
    if len(reads) < len(viral):  # other sequences among them: their rows in their places
        tsv, bed = _merge_rows(stats, block, viral, is_read, (tsv, bed), chunk_length, gap)
    sinks.tsv.write("".join(tsv))
    sinks.bed.write("".join(bed))


def _merge_rows(
    stats: JobStats,
    block: ResultBlock,
    viral: npt.NDArray[np.int64],
    is_read: npt.NDArray[np.bool_],
    read_rows: tuple[list[str], list[str]],
    chunk_length: int,
    gap: int,
) -> tuple[list[str], list[str]]:
    tsv, bed = [""] * len(viral), [""] * len(viral)
    for k, t, b in zip(np.flatnonzero(is_read).tolist(), *read_rows, strict=True):
        tsv[k], bed[k] = t, b
    for k in np.flatnonzero(~is_read).tolist():
        regions = block_regions(block, int(viral[k]), chunk_length, gap)
        tsv[k] = "".join(r.tsv_row() for r in regions)
        bed[k] = "".join(r.bed_row() for r in regions)
        stats.regions += len(regions)
        stats.region_bases += sum(r.length for r in regions)
        stats.partial_regions += sum(not r.whole_sequence for r in regions)
    return tsv, bed


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
