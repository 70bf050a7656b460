"""Atomic file writes: a reader sees either the old file or the complete new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from virnucpro_tui.core.filemode import give_plain_file_mode


def _temporary(target: Path) -> tuple[int, str]:
    """A hidden temporary file next to ``target``, with the mode ``open()`` would give it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    give_plain_file_mode(fd)
    return fd, tmp


@contextlib.contextmanager
def atomic_text_writer(path: str | Path, fsync: bool = True) -> Iterator[TextIO]:
    """Write ``path`` through a temporary file in the same directory, then rename it into place."""
    target = Path(path)
    fd, tmp = _temporary(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, fsync: bool = True) -> None:
    with atomic_text_writer(path, fsync=fsync) as fh:
        fh.write(text)


class PartialFile:
    """A binary file written under a hidden temporary name (``.NAME.XXXX.partial``) and renamed
    into place by ``commit``; ``abort`` removes it. For files written over many calls (the
    assembled features); a reader never sees a part under the final name."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        fd, tmp = _temporary(self.target)
        self.tmp = Path(tmp)
        self.fh: BinaryIO = os.fdopen(fd, "w+b")

    def commit(self, fsync: bool = True) -> None:
        self.fh.flush()
        if fsync:
            os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes | memoryview, fsync: bool = True) -> None:
    """Write ``path`` atomically (a temporary file renamed into place)."""
    partial = PartialFile(path)
    try:
        partial.fh.write(data)
        partial.commit(fsync=fsync)
    except BaseException:
        partial.abort()
        raise
