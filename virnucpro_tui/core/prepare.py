"""Preparation: FASTA -> chunks -> kept frames, streamed in input order (docs/architecture.md#the-scientific-contract)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from virnucpro_tui.core.chunking import chunk_sequence
from virnucpro_tui.core.fasta import FastaRecord, ReadPosition, input_stem, iter_records
from virnucpro_tui.core.translation import Frame, identify_frames_batch

FASTA_WIDTH = 60  # Biopython's SeqIO.write wrapping, as in the published chunked file


@dataclass
class PreparedRecord:
    """One input sequence after chunking and translation."""

    index: int
    id: str
    length: int
    chunks: list[tuple[str, str]]
    frames: list[list[Frame]]  # kept frames per chunk, parallel to ``chunks``

    @property
    def chunks_with_frames(self) -> int:
        return sum(1 for f in self.frames if f)

    def all_frames(self) -> Iterator[Frame]:
        for chunk_frames in self.frames:
            yield from chunk_frames


def prepare_records(
    records: Iterable[FastaRecord], chunk_length: int, batch_chunks: int = 4096
) -> Iterator[PreparedRecord]:
    """Chunk and translate records, batching chunks across records for vectorised translation."""
    pending: list[tuple[FastaRecord, list[tuple[str, str]]]] = []
    pending_chunks = 0
    for record in records:
        chunks = chunk_sequence(record.id, record.seq, chunk_length)
        pending.append((record, chunks))
        pending_chunks += len(chunks)
        if pending_chunks >= batch_chunks:
            yield from _translate_pending(pending, batch_chunks)
            pending, pending_chunks = [], 0
    if pending:
        yield from _translate_pending(pending, batch_chunks)


def _translate_pending(
    pending: list[tuple[FastaRecord, list[tuple[str, str]]]], batch_chunks: int
) -> Iterator[PreparedRecord]:
    flat = [chunk for _, chunks in pending for chunk in chunks]
    # at most batch_chunks at a time: one huge record must not make huge NumPy work arrays
    frames = [
        f
        for i in range(0, len(flat), batch_chunks)
        for f in identify_frames_batch(flat[i : i + batch_chunks])
    ]
    pos = 0
    for record, chunks in pending:
        n = len(chunks)
        yield PreparedRecord(
            record.index, record.id, len(record.seq), chunks, frames[pos : pos + n]
        )
        pos += n


def prepare_file(
    path: str | Path, chunk_length: int, position: ReadPosition | None = None
) -> Iterator[PreparedRecord]:
    """Validated, prepared records of one FASTA file, in input order (``position`` follows how
    far into the file the reading is)."""
    return prepare_records(iter_records(path, position), chunk_length)


def write_wrapped(out: TextIO, name: str, seq: str, width: int = FASTA_WIDTH) -> None:
    out.write(f">{name}\n")
    for i in range(0, len(seq), width):
        out.write(seq[i : i + width])
        out.write("\n")


@dataclass
class PrepareSummary:
    records: int = 0
    chunks: int = 0
    chunks_with_frames: int = 0
    frames: int = 0
    files: tuple[Path, ...] = ()

    @property
    def chunks_without_frames(self) -> int:
        return self.chunks - self.chunks_with_frames


def intermediate_paths(
    input_path: str | Path, out_dir: str | Path, chunk_length: int
) -> tuple[Path, Path, Path]:
    stem = input_stem(input_path)
    out = Path(out_dir)
    return (
        out / f"{stem}_chunked{chunk_length}.fa",
        out / f"{stem}_identified_nucleotide.fa",
        out / f"{stem}_identified_protein.faa",
    )


def write_intermediate_files(
    input_path: str | Path, out_dir: str | Path, chunk_length: int
) -> PrepareSummary:
    """The published tool's three intermediate files, same records in the same order.

    Files are written under temporary names and renamed at the end, so an interrupted
    ``prepare`` never leaves a file that looks complete.
    """
    paths = intermediate_paths(input_path, out_dir, chunk_length)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tmp = [p.with_name(p.name + ".partial") for p in paths]
    summary = PrepareSummary(files=paths)
    try:
        with tmp[0].open("w") as chunked, tmp[1].open("w") as dna, tmp[2].open("w") as protein:
            for rec in prepare_file(input_path, chunk_length):
                summary.records += 1
                for (chunk_id, chunk_seq), frames in zip(rec.chunks, rec.frames, strict=False):
                    write_wrapped(chunked, chunk_id, chunk_seq)
                    summary.chunks += 1
                    summary.chunks_with_frames += bool(frames)
                    for frame in frames:
                        dna.write(f">{frame.id}\n{frame.nucleotide}\n")
                        protein.write(f">{frame.id}\n{frame.protein}\n")
                        summary.frames += 1
        for t, p in zip(tmp, paths, strict=False):
            os.replace(t, p)
    finally:
        for t in tmp:
            t.unlink(missing_ok=True)
    return summary
