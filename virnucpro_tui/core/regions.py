"""Viral regions: the maximal runs of viral chunks inside a sequence, in the sequence's own
coordinates (docs/outputs.md#viral_regionstsv-and-viral_regionsbed).

A chunk's span is the span the chunker cut it with (``core/chunking.py``), never re-derived.
A chunk without a stop-free frame has no call: it is not viral, so it breaks a region (unless
``gap`` merges across it, as across any non-viral chunk).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from virnucpro_tui.core.chunking import chunk_spans
from virnucpro_tui.core.outputs import ChunkConsensus, format_score

REGIONS_TSV_HEADER = (
    "Sequence_ID\tstart\tend\tlength\tchunks\tmean_virus_score\tmax_virus_score\twhole_sequence\n"
)


class Region(NamedTuple):
    """Chunks ``first..last`` (0-based, inclusive) of one sequence; ``start``/``end`` are
    0-based half-open; the scores are over the region's chunks that have frames."""

    sequence_id: str
    first: int
    last: int
    start: int
    end: int
    mean_virus_score: float
    max_virus_score: float
    whole_sequence: bool

    @property
    def chunks(self) -> int:
        return self.last - self.first + 1

    @property
    def length(self) -> int:
        return self.end - self.start

    def tsv_row(self) -> str:
        """1-based inclusive coordinates."""
        best = format_score(self.max_virus_score)
        mean = best if self.mean_virus_score == self.max_virus_score else None
        return (
            f"{self.sequence_id}\t{self.start + 1}\t{self.end}\t{self.length}\t{self.chunks}\t"
            f"{mean or format_score(self.mean_virus_score)}\t{best}\t"
            f"{'yes' if self.whole_sequence else 'no'}\n"
        )

    def bed_row(self) -> str:
        """BED6: 0-based half-open; score = round(1000 × max_virus_score); no strand."""
        score = round(1000 * self.max_virus_score)
        return f"{self.sequence_id}\t{self.start}\t{self.end}\t{self.sequence_id}\t{score}\t.\n"


def read_region_rows(
    sequence_ids: list[str], lengths: list[int], scores: npt.NDArray[np.float32]
) -> tuple[list[str], list[str]]:
    """The TSV and BED rows of many reads' regions, as ``Region.tsv_row`` and ``bed_row`` write
    them: a read (one chunk, ``chunking.single_chunk``) whose chunk is viral is one region,
    the whole read, and both its scores are its chunk's P(virus) (``scores``)."""
    texts = [format_score(s) for s in scores]
    bed_scores = np.rint(1000 * scores.astype(np.float64)).astype(np.int64).tolist()
    tsv = [
        f"{sid}\t1\t{n}\t{n}\t1\t{s}\t{s}\tyes\n"
        for sid, n, s in zip(sequence_ids, lengths, texts, strict=True)
    ]
    bed = [
        f"{sid}\t0\t{n}\t{sid}\t{b}\t.\n"
        for sid, n, b in zip(sequence_ids, lengths, bed_scores, strict=True)
    ]
    return tsv, bed


def viral_runs(viral: list[bool], gap: int = 0) -> list[tuple[int, int]]:
    """Maximal runs ``(first, last)`` of True in ``viral``, runs separated by at most ``gap``
    False entries merged into one."""
    if gap < 0:
        raise ValueError("the region gap is a number of chunks, 0 or more")
    runs: list[tuple[int, int]] = []
    for k, is_viral in enumerate(viral):
        if not is_viral:
            continue
        if runs and k - runs[-1][1] - 1 <= gap:
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return runs


def sequence_regions(
    sequence_id: str,
    length: int,
    chunk_length: int,
    chunks: Mapping[int, ChunkConsensus],
    gap: int = 0,
) -> list[Region]:
    """The viral regions of one sequence of ``length`` bases, from its chunks' calls (chunk
    index -> consensus; chunks without frames absent)."""
    spans = chunk_spans(length, chunk_length)
    if max(chunks, default=-1) >= len(spans):
        raise ValueError(f"{sequence_id}: a chunk past the end of its {length} bases")
    viral = [k in chunks and chunks[k].is_virus for k in range(len(spans))]
    if len(viral) == 1:  # a read: one chunk, viral (or no region)
        return (
            [one_chunk_region(sequence_id, length, chunk_length, float(chunks[0].max_virus))]
            if viral[0]
            else []
        )
    return [
        _region(sequence_id, length, spans, chunks, first, last)
        for first, last in viral_runs(viral, gap)
    ]


def one_chunk_region(
    sequence_id: str, length: int, chunk_length: int, max_virus_score: float
) -> Region:
    """The region of a sequence cut into one chunk (a read) whose chunk is viral: its span."""
    ((start, end),) = chunk_spans(length, chunk_length)
    return Region(
        sequence_id,
        0,
        0,
        start,
        end,
        mean_virus_score=max_virus_score,
        max_virus_score=max_virus_score,
        whole_sequence=start == 0 and end == length,
    )


def _region(
    sequence_id: str,
    length: int,
    spans: list[tuple[int, int]],
    chunks: Mapping[int, ChunkConsensus],
    first: int,
    last: int,
) -> Region:
    scores = [float(chunks[k].max_virus) for k in range(first, last + 1) if k in chunks]
    start, end = spans[first][0], spans[last][1]
    return Region(
        sequence_id,
        first,
        last,
        start,
        end,
        mean_virus_score=sum(scores) / len(scores),
        max_virus_score=max(scores),
        whole_sequence=start == 0 and end == length,
    )
