"""One sequence's results as objects (docs/outputs.md): its summary row with its frames, and the
per-chunk calls of the published consensus. ``core/result_blocks.py`` reads a job's results a
block of sequences at a time and makes these only for the sequences asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from virnucpro_tui.core.outputs import (
    ChunkConsensus,
    ConsensusBuilder,
    Prediction,
    SequenceSummary,
    chunk_key,
)

CHUNK_MARK = "_chunk_"


class ResultsError(ValueError):
    """A results file that is not what this tool wrote (truncated, edited, another format)."""


class SequenceResult(NamedTuple):
    """One input sequence: its summary row, its frames, and its chunks' consensus by chunk
    index (0-based; a chunk without a stop-free frame has no entry)."""

    summary: SequenceSummary
    frames: list[Prediction]
    chunks: dict[int, ChunkConsensus]


def chunk_index(chunk_id: str) -> int:
    """The 0-based chunk index of a chunk id ``<record>_chunk_<k>``."""
    _, mark, k = chunk_id.rpartition(CHUNK_MARK)
    if mark and k.isdigit() and (index := int(k) - 1) >= 0:
        return index
    raise ResultsError(f"{chunk_id!r} is not a chunk id of this tool")


def chunk_calls(frames: list[Prediction]) -> dict[int, ChunkConsensus]:
    """The consensus of ``prediction_results_highestscore.csv`` (the same code: the frame id
    without its frame suffix is the chunk id), by chunk index."""
    if len(frames) == 1:  # a read's single frame: the builder's result, without the builder
        (p,) = frames
        return {chunk_index(chunk_key(p.frame_id)): ChunkConsensus(p.p_others, p.p_virus)}
    chunks = ConsensusBuilder().add_all(frames).chunks
    return {chunk_index(key): consensus for key, consensus in chunks.items()}


def parse_summary_row(line: str) -> SequenceSummary:
    """One row of ``sequence_summary.tsv``; raises ResultsError when it is not one."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 8:
        raise ResultsError(f"{len(fields)} columns, expected 8")
    rid, length, chunks, with_frames, frames, viral, score, call = fields
    try:
        summary = SequenceSummary(
            rid,
            int(length),
            int(chunks),
            int(with_frames),
            int(frames),
            int(viral),
            None if score == "NA" else np.float32(score),
        )
    except ValueError:
        raise ResultsError(f"a number column holds {line.strip()!r}") from None
    if summary.call != call:
        raise ResultsError(f"{rid}: call {call!r} disagrees with its chunk counts")
    return summary
