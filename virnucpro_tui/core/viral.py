"""``viral_sequences.fa``: the input records called virus, in input order, letters as in the
input (docs/outputs.md#viral_sequencesfa). Streamed: one record in memory at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from virnucpro_tui.core.fasta import FastaRecord
from virnucpro_tui.core.outputs import SequenceSummary, format_score


class InputMismatchError(ValueError):
    """The input no longer matches the run's summary (changed, or another file)."""


def viral_header(summary: SequenceSummary, title: str) -> str:
    """``>ID call=virus viral_chunks=K/N max_virus_score=S`` then the original description
    (N: the chunks with a stop-free frame, the call's basis)."""
    parts = title.split(None, 1)
    description = parts[1].strip() if len(parts) > 1 else ""
    score = "NA" if summary.max_virus_score is None else format_score(summary.max_virus_score)
    header = (
        f">{summary.id} call={summary.call} viral_chunks={summary.viral_chunks}/"
        f"{summary.chunks_with_frames} max_virus_score={score}"
    )
    return f"{header} {description}\n" if description else header + "\n"


class ViralSequenceFilter:
    """Fed each summary row in input order (``add``), writes the matching input record when it
    is called virus. A record whose id or length differs from its row raises, and so do records
    past the last row at ``finish`` unless ``prefix`` (the rows of a run not finished)."""

    def __init__(self, records: Iterable[FastaRecord], out: TextIO) -> None:
        self.records = iter(records)
        self.out = out
        self.written = 0

    def add(self, summary: SequenceSummary) -> None:
        record = next(self.records, None)
        if record is None:
            raise InputMismatchError(f"the input ends before sequence {summary.id!r}")
        if record.id != summary.id or len(record.seq) != summary.length:
            raise InputMismatchError(
                f"record {record.index + 1} of the input is {record.id!r} of "
                f"{len(record.seq)} bases; the run scored {summary.id!r} of {summary.length}"
            )
        if summary.call == "virus":
            self.out.write(f"{viral_header(summary, record.title)}{record.seq}\n")
            self.written += 1

    def finish(self, prefix: bool = False) -> int:
        if not prefix and next(self.records, None) is not None:
            raise InputMismatchError("the input holds more records than the run scored")
        return self.written


def write_viral_sequences(
    records: Iterable[FastaRecord],
    summaries: Iterable[SequenceSummary],
    out: TextIO,
    prefix: bool = False,
) -> int:
    """Write the records whose summary calls them virus; returns how many (both streams in
    input order; ``ViralSequenceFilter`` says what raises)."""
    viral = ViralSequenceFilter(records, out)
    for summary in summaries:
        viral.add(summary)
    return viral.finish(prefix)
