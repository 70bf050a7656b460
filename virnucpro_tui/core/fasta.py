"""Sequence input: FASTA or FASTQ, plain or compressed (gzip, bzip2, xz, zstd), recognised by
content whatever the file's name, streamed record by record and validated.

FASTA goes through Biopython's parser, FASTQ through the strict reader of ``core/fastq.py``; both
give the same records (id, title, sequence), so everything downstream is the same for every
format. Every problem becomes an :class:`InputError` that names the file, the record and the
problem, so the command line can print one line and exit 2.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import hashlib
import io
import itertools
import os
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from Bio.SeqIO import FastaIO

from virnucpro_tui.core.compression import (
    READ_ERRORS,
    Compression,
    describe_read_error,
    detect_compression,
    open_decompressed,
)
from virnucpro_tui.core.fastq import FastqProblem, fastq_records
from virnucpro_tui.errors import InputError

# Biopython's parser carries no annotations: its documented signature (title, sequence)
simple_fasta_parser: Callable[[Iterable[str]], Iterator[tuple[str, str]]] = (
    FastaIO.SimpleFastaParser
)

FASTA_SUFFIXES = (".fasta", ".fas", ".fna", ".ffn", ".fa", ".fsa", ".seq", ".faa")
FASTQ_SUFFIXES = (".fastq", ".fq")
COMPRESSION_SUFFIXES = (".gz", ".bgz", ".bz2", ".xz", ".zst")
# IUPAC nucleotide codes plus gaps; anything else is not DNA.
_NOT_NUCLEOTIDE = re.compile(r"[^ACGTURYKMSWBDHVNacgturykmswbdhvn\-]")
_PROTEIN_ONLY = set("EFIJLOPQXZefijlopqxz*")
_ACGTUN = b"ACGTUNacgtun"
_CP1252_FALLBACK = "virnucpro-cp1252-fallback"


def _decode_as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8 (a header typed on Windows) are read as Windows-1252."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("cp1252", errors="replace"), exc.end


codecs.register_error(_CP1252_FALLBACK, _decode_as_cp1252)


class SequenceFormat(str, enum.Enum):
    FASTA = "FASTA"
    FASTQ = "FASTQ"


@dataclass(frozen=True)
class FastaRecord:
    """One input sequence, from FASTA or FASTQ alike. ``id`` is the first word of the header
    (as Biopython gives it), ``title`` the whole header without its '>' or '@'."""

    index: int
    id: str
    title: str
    seq: str


@dataclass
class InputScan:
    """What a validation pass learned about one input file."""

    path: Path
    records: int = 0
    bases: int = 0
    chunks: int = 0
    rna_records: list[str] = field(default_factory=list)
    format: SequenceFormat = SequenceFormat.FASTA
    compression: Compression = Compression.NONE
    warnings: list[str] = field(default_factory=list)  # for the user, once per run

    @property
    def gzipped(self) -> bool:
        return self.compression is Compression.GZIP


def input_stem(path: str | Path) -> str:
    """The input name without its compression and FASTA/FASTQ extensions, as in
    ``<stem>_chunked500.fa`` (``x_R1.fastq.gz`` -> ``x_R1``)."""
    name = Path(path).name
    for suffix in COMPRESSION_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    for suffix in FASTA_SUFFIXES + FASTQ_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def starts_with_bom(path: str | Path) -> bool:
    """True when the file's text (decompressed if need be) begins with a UTF-8 byte-order mark."""
    p = Path(path)
    with open_decompressed(p, detect_compression(p)) as raw:
        return raw.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8


def open_sequences(path: str | Path) -> tuple[TextIO, Compression]:
    """Open a FASTA or FASTQ file for reading as text, decompressing by its magic bytes; check it
    exists and has data. The handle's ``fileno()`` is the file on disk's (compressed bytes)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: input file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a FASTA or FASTQ file")
    try:
        size = p.stat().st_size
        compression = detect_compression(p) if size else Compression.NONE
    except OSError as exc:
        raise InputError(f"{p}: cannot read input ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(f"{p}: input file is empty (0 bytes)")
    raw = open_decompressed(p, compression)
    # UTF-8, a leading byte-order mark dropped; a header with Windows-1252 bytes keeps them as
    # their Windows-1252 characters (undefined ones become U+FFFD). Universal newlines: CRLF
    # reads exactly like LF.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors=_CP1252_FALLBACK, newline=None)
    return text, compression


def _first_content_line(handle: TextIO) -> tuple[str | None, int]:
    """The first line that is not blank, and its line number."""
    for number, line in enumerate(handle, 1):
        if line.strip():
            return line, number
    return None, 0


# what the first bytes of some files that are not sequences say they are
_KNOWN_BINARY = {
    "BAM\x01": "a BAM file (`samtools fastq` converts it to FASTQ)",
    "CRAM": "a CRAM file (`samtools fastq` converts it to FASTQ)",
    "%PDF": "a PDF document",
}
# a SAM file's header lines start with '@' too, then a two-letter record type and a tab
_SAM_HEADER = re.compile(r"@(HD|SQ|RG|PG|CO)\t")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _not_sequences(path: Path, first: str) -> InputError:
    """The error for a file whose first line starts neither a FASTA nor a FASTQ record."""
    for magic, what in _KNOWN_BINARY.items():
        if first.startswith(magic):
            return InputError(f"{path}: not a FASTA or FASTQ file: {what}")
    if _CONTROL.search(first) or _looks_binary(path):
        return InputError(f"{path}: not a FASTA or FASTQ file: binary data")
    shown = first.strip()[:40].encode("ascii", "replace").decode()
    return InputError(
        f"{path}: not a FASTA or FASTQ file (first line is {shown!r}, expected '>' or '@')"
    )


def _looks_binary(path: Path) -> bool:
    """NUL or other control bytes among the first 4 kB of the (decompressed) data."""
    try:
        with open_decompressed(path, detect_compression(path)) as raw:
            head = raw.read(4096)
    except READ_ERRORS:
        return False
    return bool(re.search(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]", head))


def _check_record(path: Path, index: int, rid: str, seq: str) -> None:
    where = f"{path}: record {index + 1}"
    if not rid:
        raise InputError(f"{where}: header line has no sequence id")
    where = f"{where} ('{rid}')"
    if not seq:
        raise InputError(f"{where}: empty record (no sequence)")
    bad = _NOT_NUCLEOTIDE.search(seq)
    if bad:
        char = bad.group()
        pos = bad.start() + 1
        if char in _PROTEIN_ONLY or _looks_like_protein(seq):
            raise InputError(
                f"{where}: looks like a protein sequence ('{char}' at position {pos}); "
                "VirNucPro needs nucleotide sequences"
            )
        raise InputError(f"{where}: invalid character {char!r} at position {pos}; expected DNA")
    if _looks_like_protein(seq):
        raise InputError(
            f"{where}: looks like a protein sequence (under half of it is A/C/G/T/U/N); "
            "VirNucPro needs nucleotide sequences"
        )


def _looks_like_protein(seq: str) -> bool:
    """Under half of the first 10,000 letters are A/C/G/T/U/N (either case)."""
    if len(seq) < 8:
        return False
    head = seq[:10_000]
    if head.isascii():  # one pass in C: delete those letters, count what is left
        acgtn = len(head) - len(head.encode("ascii").translate(None, _ACGTUN))
        return acgtn < 0.5 * len(head)
    head = head.upper()  # upper() may change the length of non-ASCII text: count as written
    acgtn = sum(head.count(c) for c in "ACGTUN")
    return acgtn < 0.5 * len(head)


class ReadPosition:
    """How much of an input file a reader has consumed, in bytes of the file as stored
    (compressed bytes for a compressed input): the operating system's offset in the open file, so it counts
    what was read from disk, read-ahead included. For progress estimates (docs/events.md)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._last = 0

    def follow(self, handle: TextIO) -> None:
        self._fd, self._last = handle.fileno(), 0

    def stop(self) -> None:
        """Before the file is closed: its descriptor may be reused afterwards."""
        self._last, self._fd = self.bytes, None

    @property
    def bytes(self) -> int:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._last = os.lseek(self._fd, 0, os.SEEK_CUR)
        return self._last


def iter_records(path: str | Path, position: ReadPosition | None = None) -> Iterator[FastaRecord]:
    """Stream validated records of a FASTA or FASTQ file, plain or compressed. Raises
    :class:`InputError` on the first problem. ``position`` follows how far into the file (in
    bytes on disk) the reading is."""
    p = Path(path)
    for index, (rid, title, seq) in enumerate(iter_sequences(p, position)):
        _check_record(p, index, rid, seq)
        yield FastaRecord(index, rid, title, seq)


def iter_sequences(
    path: str | Path, position: ReadPosition | None = None
) -> Iterator[tuple[str, str, str]]:
    """``(id, title, letters)`` of each record, in order, without the checks of letters and
    ids that ``iter_records`` adds: for an input a run has validated already (the report reads
    it again). Raises :class:`InputError` when the file cannot be read as records."""
    p = Path(path)
    handle, compression = open_sequences(p)
    if position is not None:
        position.follow(handle)
    index = 0
    try:
        try:
            first, line_no = _first_content_line(handle)
        except READ_ERRORS as exc:
            problem = describe_read_error(exc, compression)
            raise InputError(f"{p}: unreadable at record 1: {problem}") from None
        if first is None:
            raise InputError(f"{p}: input file has no sequences (only blank lines)")
        lines = itertools.chain((first,), handle)  # in C: no Python frame per line
        if first.startswith(">"):
            parsed = simple_fasta_parser(lines)
        elif _SAM_HEADER.match(first):
            raise InputError(
                f"{p}: not a FASTA or FASTQ file: a SAM file (`samtools fastq` converts it to FASTQ)"
            )
        elif first.startswith("@"):
            parsed = fastq_records(lines, line_no - 1)
        else:
            raise _not_sequences(p, first)
        try:
            for title, seq in parsed:
                yield title.split(None, 1)[0] if title else "", title, seq
                index += 1
        except FastqProblem as exc:
            named = f" ('{exc.rid}')" if exc.rid else ""
            raise InputError(
                f"{p}: record {exc.record}{named}, line {exc.line}: {exc.problem}"
            ) from None
        except READ_ERRORS as exc:
            raise InputError(
                f"{p}: unreadable at record {index + 1}: {describe_read_error(exc, compression)}"
            ) from None
    finally:
        if position is not None:
            position.stop()
        handle.close()


def sequence_format(path: str | Path) -> SequenceFormat:
    """FASTA or FASTQ, from the first line that is not blank (the file is known to be valid)."""
    handle, _ = open_sequences(path)
    with handle:
        first, _ = _first_content_line(handle)
    return SequenceFormat.FASTQ if first and first.startswith("@") else SequenceFormat.FASTA


def _id_digest(rid: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(rid.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def scan_input(path: str | Path, chunk_length: int) -> InputScan:
    """Validate a whole input before any work starts: records, duplicates, chunk count.

    Memory stays small: duplicate ids are found through sorted 64-bit digests, not a set of strings.
    """
    p = Path(path)
    scan = InputScan(path=p)
    digests: array[int] = array("Q")
    for record in iter_records(p):
        scan.records += 1
        n = len(record.seq)
        scan.bases += n
        scan.chunks += -(-n // chunk_length)
        digests.append(_id_digest(record.id))
        if ("U" in record.seq or "u" in record.seq) and len(scan.rna_records) < 5:
            scan.rna_records.append(record.id)
    if scan.records == 0:
        raise InputError(f"{p}: no FASTA or FASTQ records found")
    _check_duplicates(p, digests)
    scan.compression = detect_compression(p)
    scan.format = sequence_format(p)
    if starts_with_bom(p):
        scan.warnings.append(
            f"{p}: the file begins with a UTF-8 byte-order mark (as some Windows editors save "
            "files); it was ignored, the records are read as without it"
        )
    return scan


def _check_duplicates(path: Path, digests: array[int]) -> None:
    arr = np.frombuffer(digests, dtype=np.uint64)
    if len(arr) < 2:
        return
    ordered = np.sort(arr)
    dup = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(dup):
        return
    target = int(dup[0])
    seen: dict[str, int] = {}
    for record in iter_records(path):
        if _id_digest(record.id) != target:
            continue
        if record.id in seen:
            raise InputError(
                f"{path}: record {record.index + 1} ('{record.id}'): duplicate sequence id "
                f"(first seen at record {seen[record.id] + 1})"
            )
        seen[record.id] = record.index
