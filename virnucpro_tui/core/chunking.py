"""Fixed-length chunking, exactly as the published tool's ``split_fasta_chunk`` (docs/architecture.md#the-scientific-contract)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

LengthT = TypeVar("LengthT", int, npt.NDArray[np.int64])


def chunk_starts(length: int, chunk_size: int) -> list[int]:
    """Start offsets of the chunks of a sequence of ``length`` bases.

    The overlap needed to cover the sequence with whole chunks is spread over the chunk
    boundaries, larger steps first; the last chunk is often shorter than ``chunk_size``.
    """
    if length <= 0:
        return []
    if length <= chunk_size:
        return [0]
    n = -(-length // chunk_size)
    repeat = n * chunk_size - length
    lower = int(repeat / n)
    need_up = repeat - lower * (n - 1)
    steps = [lower + 1] * need_up + [lower] * max(0, n - 1 - need_up) + [0]
    starts = []
    moved = 0
    for k in range(n):
        starts.append(k * chunk_size - moved)
        moved += steps[k] if k < len(steps) else 0
    return starts


def single_chunk(length: LengthT, chunk_size: int) -> LengthT:
    """Whether a sequence of ``length`` bases (or each of an array of lengths) is cut into one
    chunk, which then spans it whole: ``chunk_spans`` gives ``[(0, length)]``."""
    return (length > 0) & (length <= chunk_size)  # type: ignore[return-value]


def chunk_spans(length: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]``, 0-based half-open: where each chunk lies in its sequence. The
    chunks are cut with these spans, so a chunk's place is never re-derived elsewhere."""
    return [(start, min(start + chunk_size, length)) for start in chunk_starts(length, chunk_size)]


def chunk_sequence(record_id: str, seq: str, chunk_size: int) -> list[tuple[str, str]]:
    """``[(chunk_id, chunk_seq), ...]`` with ids ``<record id>_chunk_<k>``; case is kept."""
    return [
        (f"{record_id}_chunk_{k + 1}", seq[start:end])
        for k, (start, end) in enumerate(chunk_spans(len(seq), chunk_size))
    ]
