"""A job's results read back in input order, one sequence at a time (docs/outputs.md): each
sequence's summary row with its frames, and the per-chunk calls of the published consensus.

Everything streams: memory holds one sequence's frames at a time, whatever the run's size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from virnucpro_tui.core.outputs import (
    PREDICTION_FILE,
    PREDICTION_HEADER,
    SUMMARY_FILE,
    SUMMARY_HEADER,
    ChunkConsensus,
    ConsensusBuilder,
    Prediction,
    SequenceSummary,
    chunk_key,
    parse_prediction_rows,
)

CHUNK_MARK = "_chunk_"
CALLS = ("virus", "others", "no_frames")


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


def iter_summary(path: Path) -> Iterator[SequenceSummary]:
    """The rows of a ``sequence_summary.tsv``, checked; raises ResultsError naming the line."""
    with path.open(encoding="utf-8") as fh:
        if fh.readline() != SUMMARY_HEADER:
            raise ResultsError(f"{path}: not a sequence_summary.tsv (its header differs)")
        for n, line in enumerate(fh, start=2):
            try:
                yield parse_summary_row(line)
            except ResultsError as exc:
                raise ResultsError(f"{path}: line {n}: {exc}") from None


def iter_predictions(path: Path) -> Iterator[Prediction]:
    with path.open(encoding="utf-8") as fh:
        if fh.readline() != PREDICTION_HEADER:
            raise ResultsError(f"{path}: not a prediction_results.txt (its header differs)")
        try:
            yield from parse_prediction_rows(fh)
        except ValueError as exc:
            raise ResultsError(f"{path}: a malformed row ({exc})") from None


def join_results(
    summaries: Iterable[SequenceSummary], frames: Iterable[Prediction]
) -> Iterator[SequenceResult]:
    """Each sequence with its ``summary.frames`` frames (both streams in input order), checked:
    the frames must belong to the sequence and agree with its counts."""
    stream = iter(frames)
    for summary in summaries:
        preds = list(itertools.islice(stream, summary.frames))
        yield SequenceResult(summary, preds, _checked_calls(summary, preds))
    if next(stream, None) is not None:
        raise ResultsError("more frames than the summary's sequences hold")


def _checked_calls(summary: SequenceSummary, preds: list[Prediction]) -> dict[int, ChunkConsensus]:
    """The chunk calls of one sequence's frames, checked against its summary row."""
    prefix = summary.id + CHUNK_MARK
    if len(preds) < summary.frames or not all(p.frame_id.startswith(prefix) for p in preds):
        raise ResultsError(f"{summary.id}: its frames are missing or out of order")
    chunks = chunk_calls(preds)
    viral = sum(c.is_virus for c in chunks.values())
    if len(chunks) != summary.chunks_with_frames or viral != summary.viral_chunks:
        raise ResultsError(f"{summary.id}: its chunk counts disagree with its frames")
    return chunks


def read_job_results(job_dir: Path) -> Iterator[SequenceResult]:
    """A finished job's ``sequence_summary.tsv`` joined with its ``prediction_results.txt``."""
    return join_results(
        iter_summary(job_dir / SUMMARY_FILE), iter_predictions(job_dir / PREDICTION_FILE)
    )
