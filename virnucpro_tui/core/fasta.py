"""FASTA input: plain or gzip, streamed record by record through Biopython, validated.

Every problem becomes an :class:`InputError` that names the file, the record and the problem,
so the command line can print one line and exit 2.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import io
import itertools
import os
import re
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from Bio.SeqIO import FastaIO

from virnucpro_tui.errors import InputError

# Biopython's parser carries no annotations: its documented signature (title, sequence)
simple_fasta_parser: Callable[[Iterable[str]], Iterator[tuple[str, str]]] = (
    FastaIO.SimpleFastaParser
)

FASTA_SUFFIXES = (".fasta", ".fas", ".fna", ".ffn", ".fa", ".fsa", ".seq", ".faa")
GZIP_MAGIC = b"\x1f\x8b"
# IUPAC nucleotide codes plus gaps; anything else is not DNA.
_NOT_NUCLEOTIDE = re.compile(r"[^ACGTURYKMSWBDHVNacgturykmswbdhvn\-]")
_PROTEIN_ONLY = set("EFIJLOPQXZefijlopqxz*")
_ACGTUN = b"ACGTUNacgtun"
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)
_CP1252_FALLBACK = "virnucpro-cp1252-fallback"


def _decode_as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8 (a header typed on Windows) are read as Windows-1252."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("cp1252", errors="replace"), exc.end


codecs.register_error(_CP1252_FALLBACK, _decode_as_cp1252)


@dataclass(frozen=True)
class FastaRecord:
    """One input sequence. ``id`` is the first word of the header, as Biopython gives it."""

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
    gzipped: bool = False
    warnings: list[str] = field(default_factory=list)  # for the user, once per run


def input_stem(path: str | Path) -> str:
    """The input name without its FASTA (and gzip) extension, as in ``<stem>_chunked500.fa``."""
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix in FASTA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def starts_with_bom(path: str | Path) -> bool:
    """True when the file's text (gunzipped if need be) begins with a UTF-8 byte-order mark."""
    p = Path(path)
    with gzip.open(p, "rb") if _is_gzip(p) else p.open("rb") as raw:
        return raw.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8


def open_fasta(path: str | Path) -> TextIO:
    """Open a FASTA file for reading as text, transparently gunzipping; check it exists and has data."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: input file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a FASTA file")
    try:
        size = p.stat().st_size
        gz = _is_gzip(p) if size else False
    except OSError as exc:
        raise InputError(f"{p}: cannot read input ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(f"{p}: input file is empty (0 bytes)")
    raw = gzip.open(p, "rb") if gz else p.open("rb")  # noqa: SIM115 - returned to the caller
    # UTF-8, a leading byte-order mark dropped; a header with Windows-1252 bytes keeps them as
    # their Windows-1252 characters (undefined ones become U+FFFD). Universal newlines: CRLF
    # reads exactly like LF.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors=_CP1252_FALLBACK, newline=None)


def _first_content_line(handle: TextIO, path: Path) -> str | None:
    for line in handle:
        if line.strip():
            return line
    return None


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
                "VirNucPro needs nucleotide FASTA"
            )
        raise InputError(f"{where}: invalid character {char!r} at position {pos}; expected DNA")
    if _looks_like_protein(seq):
        raise InputError(
            f"{where}: looks like a protein sequence (under half of it is A/C/G/T/U/N); "
            "VirNucPro needs nucleotide FASTA"
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
    (compressed bytes for gzip): the operating system's offset in the open file, so it counts
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
    """Stream validated records. Raises :class:`InputError` on the first problem. ``position``
    follows how far into the file the reading is."""
    p = Path(path)
    handle = open_fasta(p)
    if position is not None:
        position.follow(handle)
    try:
        try:
            first = _first_content_line(handle, p)
        except _READ_ERRORS as exc:
            raise InputError(f"{p}: unreadable gzip or file ({exc})") from None
        if first is None:
            raise InputError(f"{p}: input file has no sequences (only blank lines)")
        if not first.startswith(">"):
            shown = first.strip()[:40].encode("ascii", "replace").decode()
            raise InputError(f"{p}: not a FASTA file (first line is {shown!r}, expected '>')")
        lines = itertools.chain((first,), handle)  # in C: no Python frame per line
        index = 0
        try:
            for title, seq in simple_fasta_parser(lines):
                rid = title.split(None, 1)[0] if title else ""
                _check_record(p, index, rid, seq)
                yield FastaRecord(index, rid, title, seq)
                index += 1
        except _READ_ERRORS as exc:
            raise InputError(
                f"{p}: unreadable input after record {index} ({exc.__class__.__name__}: {exc})"
            ) from None
    finally:
        if position is not None:
            position.stop()
        handle.close()


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
        raise InputError(f"{p}: no FASTA records found")
    _check_duplicates(p, digests)
    scan.gzipped = _is_gzip(p)
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
