"""A job's results read back a block of sequences at a time, as columns (docs/outputs.md):
``sequence_summary.tsv`` and ``prediction_results.txt`` parsed with numpy, checked against each
other, and each chunk's consensus computed for the whole block (the rule of
``prediction_results_highestscore.csv``: the maximum of each score over the chunk's frames).

Python objects are made only for the sequences asked for (``ResultBlock.result``): a report
needs them for the sequences with a viral chunk, not for every row. Memory holds one block,
whatever the run's size: at most BLOCK_SEQUENCES sequences, and at most BLOCK_FRAMES frames
unless a single sequence has more.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np
import numpy.typing as npt

from virnucpro_tui.core.outputs import (
    CALLS,
    PREDICTION_FILE,
    PREDICTION_HEADER,
    SUMMARY_FILE,
    SUMMARY_HEADER,
    ChunkConsensus,
    Prediction,
    SequenceSummary,
)
from virnucpro_tui.core.results import (
    CHUNK_MARK,
    ResultsError,
    SequenceResult,
    parse_summary_row,
)

BLOCK_SEQUENCES = 16_384
BLOCK_FRAMES = 65_536
VIRUS, OTHERS, NO_FRAMES = range(3)  # call codes: indices into CALLS

Ints = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ResultBlock:
    """Consecutive sequences of one job: their ``sequence_summary.tsv`` columns, their frames
    in file order, and their chunks with frames (by sequence, then chunk index)."""

    ids: list[str]
    length: Ints
    chunks: Ints
    chunks_with_frames: Ints
    frames: Ints
    viral_chunks: Ints
    max_virus_score: Scores  # NaN where the summary says NA
    scored: npt.NDArray[np.bool_]  # False where the summary says NA
    frame_ids: list[str]
    p_others: Scores
    p_virus: Scores
    chunk_index: Ints  # 0-based, one entry per chunk with frames
    chunk_others: Scores  # the consensus: each score's maximum over the chunk's frames
    chunk_virus: Scores

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def calls(self) -> Ints:
        """Each sequence's call as a code (VIRUS, OTHERS, NO_FRAMES): ``SequenceSummary.call``."""
        return call_codes(self.chunks_with_frames, self.viral_chunks)

    def summary(self, i: int) -> SequenceSummary:
        return SequenceSummary(self.ids[i], *self._rows[i])

    def summary_fields(self, i: int) -> tuple[int, int, int, int, int, np.float32 | None]:
        """Sequence ``i``'s length, chunks, chunks with frames, frames, viral chunks and
        maximum P(virus) (None without frames)."""
        return self._rows[i]

    def result(self, i: int) -> SequenceResult:
        """Sequence ``i`` of the block as objects: its summary row, frames and chunk calls."""
        f0, f1 = self._frame_start[i], self._frame_start[i + 1]
        p_others, p_virus = self._frame_scores
        frames = list(map(Prediction, self.frame_ids[f0:f1], p_others[f0:f1], p_virus[f0:f1]))
        return SequenceResult(self.summary(i), frames, self.chunk_calls(i))

    def chunk_calls(self, i: int) -> dict[int, ChunkConsensus]:
        """Sequence ``i``'s chunks with frames: chunk index -> consensus."""
        c0, c1 = self._chunk_start[i], self._chunk_start[i + 1]
        index, others, virus = self._chunk_lists
        return dict(
            zip(index[c0:c1], map(ChunkConsensus, others[c0:c1], virus[c0:c1]), strict=True)
        )

    def first_chunk_virus(self, indices: Ints) -> Scores:
        """The consensus P(virus) of the first chunk with frames of each of ``indices``."""
        first = np.cumsum(self.chunks_with_frames) - self.chunks_with_frames
        scores: Scores = self.chunk_virus[first[indices]]
        return scores

    # the columns as lists of Python ints and numpy float32 scalars, made once per block: a
    # numpy array's item or slice costs more than a list's
    @cached_property
    def _rows(self) -> list[tuple[int, int, int, int, int, np.float32 | None]]:
        scores = [
            s if ok else None
            for s, ok in zip(self.max_virus_score, self.scored.tolist(), strict=True)
        ]
        columns = (self.length, self.chunks, self.chunks_with_frames, self.frames)
        return list(
            zip(*(c.tolist() for c in columns), self.viral_chunks.tolist(), scores, strict=True)
        )

    @cached_property
    def _frame_start(self) -> list[int]:
        return [0, *np.cumsum(self.frames).tolist()]

    @cached_property
    def _chunk_start(self) -> list[int]:
        return [0, *np.cumsum(self.chunks_with_frames).tolist()]

    @cached_property
    def _frame_scores(self) -> tuple[list[np.float32], list[np.float32]]:
        return list(self.p_others), list(self.p_virus)

    @cached_property
    def _chunk_lists(self) -> tuple[list[int], list[np.float32], list[np.float32]]:
        return self.chunk_index.tolist(), list(self.chunk_others), list(self.chunk_virus)


def call_codes(chunks_with_frames: Ints, viral_chunks: Ints) -> Ints:
    """``virus`` when at least half the chunks with frames are viral; ``no_frames`` without any."""
    calls = np.where(2 * viral_chunks >= chunks_with_frames, VIRUS, OTHERS)
    return np.where(chunks_with_frames == 0, NO_FRAMES, calls).astype(np.int64)


def read_result_blocks(job_dir: Path) -> Iterator[ResultBlock]:
    """A finished job's ``sequence_summary.tsv`` joined with its ``prediction_results.txt``, a
    block at a time, checked: raises ResultsError naming the file and line, or the sequence."""
    summary_path, prediction_path = job_dir / SUMMARY_FILE, job_dir / PREDICTION_FILE
    with (
        summary_path.open(encoding="utf-8") as summary,
        prediction_path.open(encoding="utf-8") as predictions,
    ):
        if summary.readline() != SUMMARY_HEADER:
            raise ResultsError(f"{summary_path}: not a sequence_summary.tsv (its header differs)")
        if predictions.readline() != PREDICTION_HEADER:
            raise ResultsError(
                f"{prediction_path}: not a prediction_results.txt (its header differs)"
            )
        for rows in _summary_blocks(summary, summary_path):
            yield _join(rows, predictions, prediction_path)
        if predictions.readline():
            raise ResultsError("more frames than the summary's sequences hold")


@dataclass(frozen=True)
class _SummaryRows:
    ids: list[str]
    numbers: list[Ints]  # length, chunks, chunks_with_frames, frames, viral_chunks
    max_virus_score: Scores
    scored: npt.NDArray[np.bool_]


def _summary_blocks(fh: TextIO, path: Path) -> Iterator[_SummaryRows]:
    """The summary's rows a block at a time, cut so that a block holds at most BLOCK_FRAMES
    frames (or one sequence); the rows past the cut start the next block."""
    line_no, carried = 2, list[str]()
    while lines := carried + list(itertools.islice(fh, BLOCK_SEQUENCES - len(carried))):
        rows = _parse_summary(lines, line_no, path)
        cum_frames = np.cumsum(rows.numbers[3])
        take = max(1, int(np.searchsorted(cum_frames, BLOCK_FRAMES, side="right")))
        if take < len(lines):
            rows = _SummaryRows(
                rows.ids[:take],
                [column[:take] for column in rows.numbers],
                rows.max_virus_score[:take],
                rows.scored[:take],
            )
        carried = lines[take:]
        line_no += take
        yield rows


def _parse_summary(lines: list[str], line_no: int, path: Path) -> _SummaryRows:
    """Rows of ``sequence_summary.tsv`` starting at line ``line_no``, as columns, checked."""
    try:
        ids, *numbers, scores, calls = split_columns(lines, 8)
        columns = [np.array(column, dtype=np.int64) for column in numbers]
        values, scored = _scores(scores)
    except (ValueError, OverflowError):
        _explain(lines, line_no, path)
    if np.array(CALLS)[call_codes(columns[2], columns[4])].tolist() != calls:
        _explain(lines, line_no, path)
    if any(bool((column < 0).any()) for column in columns):
        bad = int(np.flatnonzero(np.any(np.stack(columns) < 0, axis=0))[0])
        raise ResultsError(f"{path}: line {line_no + bad}: a negative count")
    return _SummaryRows(ids, columns, values.astype(np.float32), scored)


def _scores(column: list[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The max_virus_score column, and where it is not NA (a sequence without frames)."""
    if "NA" not in column:
        return np.array(column, dtype=np.float64), np.ones(len(column), dtype=np.bool_)
    scored = np.array([s != "NA" for s in column], dtype=np.bool_)
    return np.array([s if s != "NA" else "nan" for s in column], dtype=np.float64), scored


def _explain(lines: list[str], line_no: int, path: Path) -> NoReturn:
    """Raise the error of the first bad row among ``lines``, as the row-by-row reader says it."""
    for n, line in enumerate(lines, start=line_no):
        try:
            parse_summary_row(line)
        except ResultsError as exc:
            raise ResultsError(f"{path}: line {n}: {exc}") from None
    raise ResultsError(f"{path}: lines {line_no}-{line_no + len(lines) - 1}: malformed")


def split_columns(lines: list[str], width: int) -> list[list[str]]:
    """Tab-separated ``lines`` (each ending in a newline but perhaps the last) as ``width``
    columns of text; raises ValueError when a line has another number of fields."""
    if list(map(str.count, lines, itertools.repeat("\t"))).count(width - 1) != len(lines):
        raise ValueError(f"a line without {width} tab-separated fields")
    text = "".join(lines)
    fields = text.replace("\n", "\t").split("\t")
    if text.endswith("\n"):
        fields.pop()
    return [fields[k::width] for k in range(width)]


def _join(rows: _SummaryRows, predictions: TextIO, path: Path) -> ResultBlock:
    """The block of ``rows`` with their frames, read next from ``predictions``, checked."""
    length, chunks, with_frames, frames, viral = rows.numbers
    total = int(frames.sum())
    lines = list(itertools.islice(predictions, total))
    try:
        frame_ids, _labels, others, virus = split_columns(lines, 4)
        p_others = np.array(others, dtype=np.float64).astype(np.float32)
        p_virus = np.array(virus, dtype=np.float64).astype(np.float32)
    except ValueError as exc:
        raise ResultsError(f"{path}: a malformed row ({exc})") from None
    owner = np.repeat(np.arange(len(rows.ids)), frames)
    chunk = _chunk_numbers(rows.ids, frames, frame_ids, owner) - 1
    late = np.flatnonzero(chunk >= chunks[owner])
    if late.size:
        raise ResultsError(f"{rows.ids[owner[late[0]]]}: a frame of a chunk past its last")
    index, chunk_others, chunk_virus, chunk_owner = _consensus(owner, chunk, p_others, p_virus)
    counted = np.bincount(chunk_owner, minlength=len(rows.ids))
    viral_counted = np.bincount(
        chunk_owner, weights=chunk_virus >= chunk_others, minlength=len(rows.ids)
    )
    wrong = np.flatnonzero((counted != with_frames) | (viral_counted != viral))
    if wrong.size:
        raise ResultsError(f"{rows.ids[wrong[0]]}: its chunk counts disagree with its frames")
    return ResultBlock(
        rows.ids,
        length,
        chunks,
        with_frames,
        frames,
        viral,
        rows.max_virus_score,
        rows.scored,
        frame_ids,
        p_others,
        p_virus,
        index,
        chunk_others,
        chunk_virus,
    )


def _chunk_numbers(ids: list[str], frames: Ints, frame_ids: list[str], owner: Ints) -> Ints:
    """The 1-based chunk number in each frame id ``<sequence id>_chunk_<k><frame>``; raises when
    a frame is missing or does not belong to its sequence."""
    prefixes = [sid + CHUNK_MARK for sid in ids]
    if bool((frames != 1).any()):  # else (reads: one frame each) one prefix per frame already
        prefixes = [prefixes[k] for k in owner.tolist()]
    matched = sum(map(str.startswith, frame_ids, prefixes))
    if len(frame_ids) < len(prefixes) or matched < len(frame_ids):
        first = next(
            (
                k
                for k, (f, p) in enumerate(zip(frame_ids, prefixes, strict=False))
                if not f.startswith(p)
            ),
            len(frame_ids),
        )
        raise ResultsError(f"{ids[owner[first]]}: its frames are missing or out of order")
    numbers = [f[len(p) : -2] for f, p in zip(frame_ids, prefixes, strict=True)]
    if all(map(str.isdigit, numbers)):
        with contextlib.suppress(OverflowError):
            chunk = np.array(numbers, dtype=np.int64)
            if not len(chunk) or int(chunk.min()) >= 1:
                return chunk
    bad = next(k for k, n in enumerate(numbers) if not n.isdigit() or not 1 <= int(n) < 2**63)
    raise ResultsError(f"{frame_ids[bad][:-2]!r} is not a chunk id of this tool")


def _consensus(
    owner: Ints, chunk: Ints, p_others: Scores, p_virus: Scores
) -> tuple[Ints, Scores, Scores, Ints]:
    """Per (sequence, chunk) with frames, in that order: the chunk index, each score's maximum
    over its frames, and the sequence."""
    if not len(chunk):
        empty = np.zeros(0, np.int64)
        return empty, p_others, p_virus, empty
    order = np.lexsort((chunk, owner))  # stable: frames in file order within a chunk
    owner, chunk = owner[order], chunk[order]
    new = (owner[1:] != owner[:-1]) | (chunk[1:] != chunk[:-1])
    starts = np.flatnonzero(np.concatenate(([True], new)))
    return (
        chunk[starts],
        np.maximum.reduceat(p_others[order], starts),
        np.maximum.reduceat(p_virus[order], starts),
        owner[starts],
    )


def blocks_from_results(
    results: Iterable[SequenceResult], size: int = BLOCK_SEQUENCES
) -> Iterator[ResultBlock]:
    """Sequences read as objects (``--partial``: from the verified shards) as blocks."""
    it = iter(results)
    while batch := list(itertools.islice(it, size)):
        yield _block_of(batch)


def _block_of(batch: list[SequenceResult]) -> ResultBlock:
    summaries = [r.summary for r in batch]
    frames = [p for r in batch for p in r.frames]
    chunks = [(k, r.chunks[k]) for r in batch for k in sorted(r.chunks)]

    def ints(values: Iterable[int]) -> Ints:
        return np.fromiter(values, dtype=np.int64)

    def scores(values: Iterable[float | np.floating[Any]]) -> Scores:
        return np.fromiter(values, dtype=np.float32)

    return ResultBlock(
        [s.id for s in summaries],
        ints(s.length for s in summaries),
        ints(s.chunks for s in summaries),
        ints(s.chunks_with_frames for s in summaries),
        ints(s.frames for s in summaries),
        ints(s.viral_chunks for s in summaries),
        scores(np.nan if s.max_virus_score is None else s.max_virus_score for s in summaries),
        np.array([s.max_virus_score is not None for s in summaries], dtype=np.bool_),
        [p.frame_id for p in frames],
        scores(p.p_others for p in frames),
        scores(p.p_virus for p in frames),
        ints(k for k, _ in chunks),
        scores(c.max_others for _, c in chunks),
        scores(c.max_virus for _, c in chunks),
    )
