"""Final outputs of one job, assembled in input order from its shard results: every frame gets
its row, a duplicate frame the scores of the identical frame that was computed
(docs/architecture.md#identical-frames-computed-once), and with ``--save-features`` its
feature row (docs/features.md)."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from virnucpro_tui.core.atomic import atomic_text_writer
from virnucpro_tui.core.dedup import ScoreStore, read_duplicates
from virnucpro_tui.core.features import (
    FEATURE_FORMATS,
    FeatureRows,
    FeatureWriter,
    SafetensorsFeatureWriter,
)
from virnucpro_tui.core.outputs import (
    HIGHESTSCORE_FILE,
    HIGHESTSCORE_HEADER,
    PREDICTION_FILE,
    PREDICTION_HEADER,
    SUMMARY_FILE,
    SUMMARY_HEADER,
    ConsensusBuilder,
    Prediction,
    SequenceSummary,
    SummaryTotals,
)
from virnucpro_tui.core.shards import read_shard_rows, shard_path
from virnucpro_tui.core.torch_archive import PtFeatureWriter
from virnucpro_tui.pool.layout import DUPLICATES, RECORDS

RECORDS_FILE = RECORDS  # docs/architecture.md#the-run-directory
CHECKPOINT_EVERY = 256  # records between checkpoints (stop requests, fault injection)
Checkpoint = Callable[[int], None]
CONSENSUS_RUN = 200_000  # chunk votes held in memory before a sorted run goes to disk
FEATURE_BLOCK = 1024  # feature rows gathered per write (13.6 MB at 3,328 values)


@dataclass
class JobTotals(SummaryTotals):
    """What a job's ``job_done`` event reports of its assembled outputs."""

    top_sequences: list[tuple[str, float, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    duplicate_frames: int = 0  # frames that copied an identical frame's result
    features_path: str | None = None
    features_bytes: int | None = None

    @property
    def viral_sequences(self) -> int:
        return self.calls["virus"]


def read_records(path: Path) -> Iterator[SequenceSummary]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rid, length, chunks, with_frames, frames = line.rstrip("\n").split("\t")
            yield SequenceSummary(rid, int(length), int(chunks), int(with_frames), int(frames))


def iter_shard_predictions(shards_dir: Path, job: str, shard_count: int) -> Iterator[Prediction]:
    for index in range(shard_count):
        yield from read_shard_rows(shard_path(shards_dir, job, index), job, index)


def iter_job_frames(
    shards_dir: Path, job: str, shard_count: int
) -> Iterator[tuple[Prediction, int]]:
    """Every frame of the job in input order with its ordinal (docs/architecture.md#identical-
    frames-computed-once): the computed frames from the shard results, in order, and each
    duplicate with the scores of the computed frame it copies."""
    computed = iter_shard_predictions(shards_dir, job, shard_count)
    duplicates = read_duplicates(shards_dir / job / DUPLICATES)
    dup = next(duplicates, None)
    scores = ScoreStore() if dup is not None else None
    position = ordinal = 0
    while True:
        if dup is not None and dup.position == position and scores is not None:
            p_others, p_virus = scores.get(dup.ordinal)
            yield Prediction(dup.frame_id, p_others, p_virus), dup.ordinal
            dup = next(duplicates, None)
        else:
            pred = next(computed, None)
            if pred is None:
                break
            if scores is not None:
                scores.append(pred.p_others, pred.p_virus)
            yield pred, ordinal
            ordinal += 1
        position += 1
    if dup is not None:
        raise ValueError(f"job {job}: a duplicate at frame {dup.position}, past the last frame")


@dataclass(frozen=True)
class FeatureRequest:
    """``run --save-features``: the format, the job's shard size (a computed frame's row is in
    shard ``ordinal // shard_size``) and an optional hook called with the rows written."""

    format: str
    shard_size: int
    on_write: Callable[[int], None] | None = None


class FeatureSink:
    """Streams a job's features in frame order, FEATURE_BLOCK rows at a time."""

    def __init__(
        self, shards_dir: Path, job: str, shard_count: int, out_dir: Path, request: FeatureRequest
    ) -> None:
        rows = sum(s.frames for s in read_records(shards_dir / job / RECORDS_FILE))
        self.request = request
        self.rows = FeatureRows(shards_dir, job, shard_count, request.shard_size)
        try:
            self.writer = open_feature_writer(request.format, out_dir, rows, self.rows.dim)
        except BaseException:
            self.rows.close()
            raise
        self.ids: list[str] = []
        self.ordinals: list[int] = []
        self.written = 0

    def add(self, frame_id: str, ordinal: int) -> None:
        self.ids.append(frame_id)
        self.ordinals.append(ordinal)
        if len(self.ids) >= FEATURE_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self.ids:
            self.writer.write(self.ids, self.rows.take(self.ids, self.ordinals))
            self.written += len(self.ids)
            self.ids, self.ordinals = [], []
            if self.request.on_write is not None:
                self.request.on_write(self.written)

    def commit(self) -> None:
        self.flush()
        self.rows.finish()
        self.writer.commit()

    def close(self) -> None:
        """Remove whatever was not committed, close the shard files."""
        self.writer.abort()
        self.rows.close()


class SortedVotes:
    """The per-chunk votes of prediction_results_highestscore.csv, written sorted by key, in
    bounded memory: every ``run_size`` votes are sorted and spilled to a temporary file in
    ``spill_dir``, and the runs are merged at the end (an input's chunk count is unbounded)."""

    def __init__(self, spill_dir: Path, run_size: int | None = None) -> None:
        self.spill_dir = spill_dir
        self.run_size = run_size or CONSENSUS_RUN
        self.votes: list[tuple[str, str]] = []
        self.runs: list[Path] = []

    def add(self, key: str, is_virus: bool) -> None:
        self.votes.append((key, str(is_virus)))
        if len(self.votes) >= self.run_size:
            self._spill()

    def _spill(self) -> None:
        self.votes.sort()
        path = self.spill_dir / f".consensus-{len(self.runs):05d}.partial"
        self.runs.append(path)
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(f"{key}\t{vote}\n" for key, vote in self.votes)
        self.votes = []

    def write(self, out: TextIO) -> None:
        self.votes.sort()
        out.write(HIGHESTSCORE_HEADER)
        with contextlib.ExitStack() as stack:
            runs = [_read_run(stack.enter_context(p.open(encoding="utf-8"))) for p in self.runs]
            for key, vote in heapq.merge(*runs, self.votes):
                out.write(f"{key}\t{vote}\n")

    def remove_runs(self) -> None:
        for path in self.runs:
            path.unlink(missing_ok=True)


def _read_run(fh: TextIO) -> Iterator[tuple[str, str]]:
    for line in fh:
        key, vote = line.rstrip("\n").split("\t")
        yield key, vote


def _score_record(summary: SequenceSummary, preds: list[Prediction], votes: SortedVotes) -> None:
    """The record's chunk votes (a chunk's frames all belong to one record)."""
    chunks = ConsensusBuilder().add_all(preds).chunks
    for key, chunk in chunks.items():
        votes.add(key, chunk.is_virus)
    summary.viral_chunks = sum(chunk.is_virus for chunk in chunks.values())
    summary.max_virus_score = max((p.p_virus for p in preds), default=None)


def assemble_job(
    shards_dir: Path,
    job: str,
    shard_count: int,
    out_dir: Path,
    top_n: int = 10,
    checkpoint: Checkpoint | None = None,
    features: FeatureRequest | None = None,
) -> JobTotals:
    """Write prediction_results.txt, the highest-score consensus and the summary (and, with
    ``features``, the saved features), atomically.

    All are written to temporary files and renamed into place at the end, so an interruption
    leaves none of them half-written. ``checkpoint(records_written)`` is called after the first
    record and every ``CHECKPOINT_EVERY`` records, with the files flushed; it may raise to
    abandon the assembly (the temporary files are then removed). Raises ``CorruptShardError``
    (before anything is renamed into place) if a shard or its features are bad.
    """
    totals = JobTotals()
    votes = SortedVotes(shards_dir / job)
    sink: FeatureSink | None = None
    try:
        if features is not None:
            sink = FeatureSink(shards_dir, job, shard_count, out_dir, features)
        top = _write_outputs(
            shards_dir, job, shard_count, out_dir, top_n, checkpoint, votes, totals, sink
        )
    finally:
        votes.remove_runs()
        if sink is not None:
            sink.close()
    totals.top_sequences = [(rid, score, call) for score, rid, call in _best(top, top_n)]
    totals.outputs = {
        name: str(out_dir / name) for name in (PREDICTION_FILE, HIGHESTSCORE_FILE, SUMMARY_FILE)
    }
    if sink is not None:
        totals.outputs.update({p.name: str(p) for p in sink.writer.paths})
        totals.features_path = str(sink.writer.paths[0])
        totals.features_bytes = sum(p.stat().st_size for p in sink.writer.paths)
    return totals


def _write_outputs(
    shards_dir: Path,
    job: str,
    shard_count: int,
    out_dir: Path,
    top_n: int,
    checkpoint: Checkpoint | None,
    votes: SortedVotes,
    totals: JobTotals,
    sink: FeatureSink | None,
) -> list[tuple[float, str, str]]:
    frames = iter_job_frames(shards_dir, job, shard_count)
    computed = 0  # a frame whose ordinal is not the next one copies an earlier result
    top: list[tuple[float, str, str]] = []
    with (
        atomic_text_writer(out_dir / PREDICTION_FILE) as pred_out,
        atomic_text_writer(out_dir / SUMMARY_FILE) as summary_out,
        atomic_text_writer(out_dir / HIGHESTSCORE_FILE) as hs_out,
    ):
        pred_out.write(PREDICTION_HEADER)
        summary_out.write(SUMMARY_HEADER)
        for n, summary in enumerate(read_records(shards_dir / job / RECORDS_FILE), start=1):
            mine = []
            for _ in range(summary.frames):
                pred, ordinal = _next_frame(frames, job)
                mine.append(pred)
                pred_out.write(pred.row())
                if ordinal == computed:
                    computed += 1
                else:
                    totals.duplicate_frames += 1
                if sink is not None:
                    sink.add(pred.frame_id, ordinal)
            _score_record(summary, mine, votes)
            summary_out.write(summary.row())
            _add_totals(totals, summary, mine)
            if summary.max_virus_score is not None:
                top.append((float(summary.max_virus_score), summary.id, summary.call))
                if len(top) > 4 * top_n:
                    top = _best(top, top_n)
            if checkpoint is not None and (n == 1 or n % CHECKPOINT_EVERY == 0):
                pred_out.flush()
                summary_out.flush()
                checkpoint(n)
        if next(frames, None) is not None:
            raise ValueError(f"job {job}: more scored frames than prepared frames")
        votes.write(hs_out)
        if sink is not None:
            sink.commit()
    return top


def _next_frame(frames: Iterator[tuple[Prediction, int]], job: str) -> tuple[Prediction, int]:
    item = next(frames, None)
    if item is None:
        raise ValueError(f"job {job}: fewer scored frames than prepared frames")
    return item


def _best(top: list[tuple[float, str, str]], n: int) -> list[tuple[float, str, str]]:
    """The ``n`` best sequences: those called virus first, then by max P(virus), so the list
    never ranks a sequence called others above one called virus (docs/outputs.md#the-call)."""
    return sorted(top, key=lambda t: (t[2] != "virus", -t[0]))[:n]


def _add_totals(totals: JobTotals, summary: SequenceSummary, preds: list[Prediction]) -> None:
    totals.add(summary)
    totals.virus_frames += sum(1 for p in preds if p.label == "virus")


def open_feature_writer(fmt: str, out_dir: Path, rows: int, dim: int) -> FeatureWriter:
    """The writer of a job's features in format ``fmt`` (docs/features.md)."""
    if fmt == "safetensors":
        return SafetensorsFeatureWriter(out_dir, rows, dim)
    if fmt == "pt":
        return PtFeatureWriter(out_dir, rows, dim)
    raise ValueError(f"unknown features format {fmt!r} (one of {', '.join(FEATURE_FORMATS)})")
