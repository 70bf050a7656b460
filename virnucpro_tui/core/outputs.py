"""Output files in the published formats (docs/architecture.md#the-scientific-contract), plus the per-sequence summary.

Scores are float32 and printed as ``str(numpy.float32(p))``: the shortest text that reads back
to the same float32, so comparisons on the printed values equal comparisons on the floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

PREDICTION_FILE = "prediction_results.txt"
HIGHESTSCORE_FILE = "prediction_results_highestscore.csv"
SUMMARY_FILE = "sequence_summary.tsv"
PREDICTION_HEADER = "Sequence_ID\tPrediction\tscore1\tscore2\n"
HIGHESTSCORE_HEADER = "Modified_ID\tIs_Virus\n"
SUMMARY_HEADER = (
    "Sequence_ID\tlength\tchunks\tchunks_with_frames\tframes\tviral_chunks\tmax_virus_score\tcall\n"
)
LABELS = ("others", "virus")
CALLS = ("virus", "others", "no_frames")  # ``SequenceSummary.call``


class Prediction(NamedTuple):
    """One scored frame: P(others) and P(virus) as float32."""

    frame_id: str
    p_others: np.float32
    p_virus: np.float32

    @property
    def label(self) -> str:
        # argmax; a tie goes to index 0, "others", as torch.max does in the published tool
        return LABELS[1] if self.p_virus > self.p_others else LABELS[0]

    def row(self) -> str:
        return f"{self.frame_id}\t{self.label}\t{format_score(self.p_others)}\t{format_score(self.p_virus)}\n"


def format_score(p: float | np.floating) -> str:
    return str(np.float32(p))


def chunk_key(frame_id: str) -> str:
    """The published consensus key: the frame id without its last two characters (F1..R3)."""
    return frame_id[:-2]


def predictions_from_arrays(frame_ids: list[str], probs: np.ndarray) -> list[Prediction]:
    probs = np.asarray(probs, dtype=np.float32)
    return [Prediction(fid, probs[i, 0], probs[i, 1]) for i, fid in enumerate(frame_ids)]


def parse_prediction_rows(lines: Iterable[str]) -> Iterator[Prediction]:
    """Read rows in the ``prediction_results.txt`` format (no header)."""
    for line in lines:
        frame_id, _label, s1, s2 = line.rstrip("\n").split("\t")
        yield Prediction(frame_id, np.float32(s1), np.float32(s2))


def read_prediction_results(path: str | Path) -> list[Prediction]:
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
        if header != PREDICTION_HEADER:
            raise ValueError(f"{path}: not a prediction_results.txt file")
        return list(parse_prediction_rows(fh))


@dataclass
class ChunkConsensus:
    """Running maxima of both scores over one chunk's frames."""

    max_others: np.float32
    max_virus: np.float32

    @property
    def is_virus(self) -> bool:
        return bool(self.max_virus >= self.max_others)


class ConsensusBuilder:
    """Accumulates the per-chunk consensus of ``prediction_results_highestscore.csv``."""

    def __init__(self) -> None:
        self.chunks: dict[str, ChunkConsensus] = {}

    def add(self, pred: Prediction) -> ChunkConsensus:
        key = chunk_key(pred.frame_id)
        cur = self.chunks.get(key)
        if cur is None:
            cur = self.chunks[key] = ChunkConsensus(pred.p_others, pred.p_virus)
        else:  # what max() keeps, without its call
            if pred.p_others > cur.max_others:
                cur.max_others = pred.p_others
            if pred.p_virus > cur.max_virus:
                cur.max_virus = pred.p_virus
        return cur

    def add_all(self, preds: Iterable[Prediction]) -> ConsensusBuilder:
        for p in preds:
            self.add(p)
        return self

    def write(self, out: TextIO) -> None:
        out.write(HIGHESTSCORE_HEADER)
        for key in sorted(self.chunks):
            out.write(f"{key}\t{self.chunks[key].is_virus}\n")


@dataclass
class SequenceSummary:
    """One input sequence's result, beyond the published outputs."""

    id: str
    length: int
    chunks: int
    chunks_with_frames: int
    frames: int
    viral_chunks: int = 0
    max_virus_score: np.float32 | None = None

    @property
    def call(self) -> str:
        """``virus`` when at least half the chunks with frames are viral; ``no_frames`` without any."""
        if self.chunks_with_frames == 0:
            return "no_frames"
        return "virus" if 2 * self.viral_chunks >= self.chunks_with_frames else "others"

    def row(self) -> str:
        score = "NA" if self.max_virus_score is None else format_score(self.max_virus_score)
        return (
            f"{self.id}\t{self.length}\t{self.chunks}\t{self.chunks_with_frames}\t{self.frames}\t"
            f"{self.viral_chunks}\t{score}\t{self.call}\n"
        )


@dataclass
class SummaryTotals:
    """The sums of a job's sequence summaries, kept by the run's assembly and by the report."""

    sequences: int = 0
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALLS, 0))
    chunks: int = 0
    chunks_with_frames: int = 0
    viral_chunks: int = 0
    frames: int = 0
    virus_frames: int = 0  # frames called virus: counted by the holder, from the frames' scores

    def add(self, s: SequenceSummary) -> str:
        """Count one more sequence; returns its call."""
        call = s.call
        self.sequences += 1
        self.calls[call] += 1
        self.chunks += s.chunks
        self.chunks_with_frames += s.chunks_with_frames
        self.viral_chunks += s.viral_chunks
        self.frames += s.frames
        return call


# Files made from the outputs above (docs/outputs.md): per job, and report.html at the top
VIRAL_SEQUENCES_FILE = "viral_sequences.fa"
REGIONS_TSV_FILE = "viral_regions.tsv"
REGIONS_BED_FILE = "viral_regions.bed"
FIGURE_PNG_FILE = "prediction.png"
FIGURE_SVG_FILE = "prediction.svg"
REPORT_FILE = "report.html"
JOB_REPORT_FILES = (
    VIRAL_SEQUENCES_FILE,
    REGIONS_TSV_FILE,
    REGIONS_BED_FILE,
    FIGURE_PNG_FILE,
    FIGURE_SVG_FILE,
)
