"""Compressed inputs, recognised by their magic bytes whatever the file's name: gzip (bgzip's
concatenated members included), bzip2 and xz through the standard library, zstd through
``compression.zstd`` (Python 3.14) or its backport. A reader's progress is the raw file's offset,
so it counts compressed bytes for every compression (docs/events.md).
"""

from __future__ import annotations

import bz2
import enum
import gzip
import lzma
import sys
import zlib
from pathlib import Path
from typing import BinaryIO

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

from virnucpro_tui.errors import InputError


class Compression(str, enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZSTD = "zstd"


MAGIC: dict[bytes, Compression] = {
    b"\x1f\x8b": Compression.GZIP,
    b"BZh": Compression.BZIP2,
    b"\xfd7zXZ\x00": Compression.XZ,
    b"\x28\xb5\x2f\xfd": Compression.ZSTD,
}
# containers a user may hand us by mistake: named, not guessed at
UNSUPPORTED_MAGIC: dict[bytes, str] = {
    b"PK\x03\x04": "a zip archive (unzip it first; gzip, bzip2, xz and zstd are read directly)",
    b"\x1f\x9d": "compressed with Unix compress (.Z; recompress it with gzip)",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive (extract it first)",
    b"\x04\x22\x4d\x18": "compressed with lz4 (decompress it first, or recompress it with gzip)",
}
# what a decompressor raises on damaged data; EOFError alone means the stream was cut short
READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zstd.ZstdError,
)


def _head(path: Path, n: int = 8) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def detect_compression(path: Path) -> Compression:
    """The compression of ``path`` from its first bytes; an unsupported one is an InputError."""
    head = _head(path)
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    for magic, what in UNSUPPORTED_MAGIC.items():
        if head.startswith(magic):
            raise InputError(f"{path}: {what}")
    return Compression.NONE


def open_decompressed(path: Path, compression: Compression) -> BinaryIO:
    """The file's decompressed bytes. ``fileno()`` of the result is the raw file's, so its
    offset counts the bytes read from disk; closing it closes the file."""
    if compression is Compression.GZIP:
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    if compression is Compression.BZIP2:
        return bz2.BZ2File(path, "rb")  # type: ignore[return-value]
    if compression is Compression.XZ:
        return lzma.LZMAFile(path, "rb")  # type: ignore[return-value]
    if compression is Compression.ZSTD:
        return zstd.ZstdFile(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def describe_read_error(exc: BaseException, compression: Compression) -> str:
    """The problem behind a read error, in the user's words."""
    if isinstance(exc, EOFError) and compression is not Compression.NONE:
        return (
            f"the {compression.value} stream is truncated (the file ends in the middle of it: "
            "was the copy or download complete?)"
        )
    if compression is not Compression.NONE:
        return f"corrupt {compression.value} data ({exc.__class__.__name__}: {exc})"
    return f"cannot read the file ({exc.__class__.__name__}: {exc})"
