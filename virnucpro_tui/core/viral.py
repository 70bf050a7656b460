"""``viral_sequences.fa``: the input records called virus, in input order, letters as in the
input (docs/outputs.md#viral_sequencesfa). Streamed: one block of records in memory at a time."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import NoReturn, TextIO

import numpy as np

from virnucpro_tui.core.outputs import SequenceSummary, format_score
from virnucpro_tui.core.result_blocks import VIRUS, ResultBlock


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
    """Fed the job's results a block at a time in input order (``add``), reads as many input
    records (``(id, title, letters)``, as ``core.fasta.iter_sequences`` gives them) and writes
    those called virus. A record whose id or length differs from its summary row raises, and so
    do records past the last row at ``finish`` unless ``prefix`` (the rows of a run not finished)."""

    def __init__(self, records: Iterable[tuple[str, str, str]], out: TextIO) -> None:
        self.records = iter(records)
        self.out = out
        self.read = 0
        self.written = 0

    def add(self, block: ResultBlock) -> None:
        records = list(itertools.islice(self.records, len(block)))
        ids = [rid for rid, _, _ in records]
        lengths = [len(seq) for _, _, seq in records]
        if ids != block.ids or lengths != block.length.tolist():
            self._mismatch(block, ids, lengths)
        virus = np.flatnonzero(block.calls == VIRUS).tolist()
        self.out.write(
            "".join(
                f"{viral_header(block.summary(i), records[i][1])}{records[i][2]}\n" for i in virus
            )
        )
        self.written += len(virus)
        self.read += len(block)

    def _mismatch(self, block: ResultBlock, ids: list[str], lengths: list[int]) -> NoReturn:
        for i, (rid, length) in enumerate(zip(ids, lengths, strict=True)):
            if rid != block.ids[i] or length != block.length[i]:
                raise InputMismatchError(
                    f"record {self.read + i + 1} of the input is {rid!r} of {length} bases; "
                    f"the run scored {block.ids[i]!r} of {block.length[i]}"
                )
        raise InputMismatchError(f"the input ends before sequence {block.ids[len(ids)]!r}")

    def finish(self, prefix: bool = False) -> int:
        if not prefix and next(self.records, None) is not None:
            raise InputMismatchError("the input holds more records than the run scored")
        return self.written
