"""Identical frames computed once (docs/architecture.md#identical-frames-computed-once).

Two frames of one job with the same nucleotide slice and the same protein have the same
features and so the same scores. ``FrameTable`` numbers the distinct frames in order of first
appearance (their *ordinals*); only the first frame of each key is computed, and the others
are listed in the job's duplicates file (``Duplicate``: position, ordinal, frame id), from which
assembly copies the computed result.

Memory stays compact on tens of millions of frames: an open-addressing NumPy table of 32-bit
ordinals (4 bytes a slot) and the 64-bit BLAKE2b digest of every distinct key (8 bytes a
frame). A digest match is confirmed against the full key, read back from a fixed-stride key log
on disk, so two different frames never share a result, whatever the digests do.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from virnucpro_tui.core.translation import Frame

KEY_HEADER = struct.Struct("<II")  # nucleotide and protein lengths, in bytes
BLOCK_BITS = 20  # digests are kept in blocks of 2**20 (8 MiB), so growing never copies them
MAX_LOAD = 0.7  # the table doubles beyond this fill
FLUSH_BYTES = 1 << 20  # key-log bytes buffered before a write


def key_stride(chunk_length: int) -> int:
    """Bytes of one key-log record: a frame's nucleotide slice is at most one chunk long and its
    protein a third of that (docs/architecture.md#the-scientific-contract)."""
    return KEY_HEADER.size + chunk_length + chunk_length // 3 + 2


def key_digest(key: bytes) -> int:
    """64-bit BLAKE2b of a key, never 0 (0 marks a frame that is never looked up); a match is
    confirmed on the full key."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") or 1


def frame_key(frame: Frame) -> bytes:
    nucleotide, protein = frame.nucleotide.encode(), frame.protein.encode()
    return KEY_HEADER.pack(len(nucleotide), len(protein)) + nucleotide + protein


class FrameTable:
    """Ordinals of one job's distinct frames. ``add`` returns ``(ordinal, new)``."""

    def __init__(self, key_log: Path, stride: int, capacity: int = 1 << 16) -> None:
        self.stride = stride
        self.distinct = 0  # ordinals given
        self.duplicates = 0
        self._slots = np.zeros(capacity, dtype=np.uint32)  # ordinal + 1; 0 is empty
        self._slot = self._slots.data
        self._mask = capacity - 1
        self._blocks: list[np.ndarray] = []
        self._block_views: list[memoryview] = []
        key_log.parent.mkdir(parents=True, exist_ok=True)
        self._log_path = key_log
        self._fd = os.open(key_log, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self._written = 0  # ordinals whose key is on disk; the rest are in _pending
        self._pending = bytearray()

    def add(self, frame: Frame) -> tuple[int, bool]:
        """The ordinal of the first frame with this key (``new`` False), or a new one."""
        key = frame_key(frame)
        if len(key) > self.stride:  # cannot happen for frames of this job's chunks: never shared
            return self._next_ordinal(None, key), True
        digest = key_digest(key)
        pos = digest & self._mask
        while (entry := self._slot[pos]) != 0:
            ordinal = entry - 1
            if self._digest(ordinal) == digest and self._key(ordinal, len(key)) == key:
                self.duplicates += 1
                return ordinal, False
            pos = (pos + 1) & self._mask
        ordinal = self._next_ordinal(digest, key)
        self._slot[pos] = ordinal + 1
        if self.distinct > MAX_LOAD * len(self._slots):
            self._grow()
        return ordinal, True

    def close(self) -> None:
        """Remove the key log (the ordinals are in the duplicates file by now)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._log_path.unlink(missing_ok=True)

    @property
    def nbytes(self) -> int:
        """Memory held: the slots and the digests."""
        return int(self._slots.nbytes + sum(b.nbytes for b in self._blocks))

    # -- storage ----------------------------------------------------------------------------
    def _next_ordinal(self, digest: int | None, key: bytes) -> int:
        ordinal = self.distinct
        self.distinct += 1
        block, offset = divmod(ordinal, 1 << BLOCK_BITS)
        if block == len(self._blocks):
            self._blocks.append(np.zeros(1 << BLOCK_BITS, dtype=np.uint64))
            self._block_views.append(self._blocks[-1].data)
        self._block_views[block][offset] = digest or 0  # 0: a key too long to share
        self._pending += key.ljust(self.stride, b"\0") if digest is not None else bytes(self.stride)
        if len(self._pending) >= FLUSH_BYTES:
            self._flush()
        return ordinal

    def _digest(self, ordinal: int) -> int:
        return int(self._block_views[ordinal >> BLOCK_BITS][ordinal & ((1 << BLOCK_BITS) - 1)])

    def _key(self, ordinal: int, length: int) -> bytes:
        if ordinal >= self._written:
            start = (ordinal - self._written) * self.stride
            return bytes(self._pending[start : start + length])
        return os.pread(self._fd, length, ordinal * self.stride)

    def _flush(self) -> None:
        view = memoryview(self._pending)
        while view:
            view = view[os.write(self._fd, view) :]
        self._written += len(self._pending) // self.stride
        self._pending = bytearray()

    def _grow(self) -> None:
        """Double the slots and re-insert every ordinal, vectorised (linear probing)."""
        capacity = 2 * len(self._slots)
        mask = capacity - 1
        # 32-bit temporaries, block by block: the peak stays near 10 bytes per distinct frame
        home = np.concatenate([(b & np.uint64(mask)).astype(np.uint32) for b in self._blocks])
        indexed = np.concatenate([b != 0 for b in self._blocks])[: self.distinct]
        ordinals = np.flatnonzero(indexed).astype(np.uint32)  # too-long keys are never looked up
        pos = home[ordinals]
        del home, indexed
        slots = np.zeros(capacity, dtype=np.uint32)
        while ordinals.size:
            # the first ordinal aiming at each free slot takes it; the others move one slot on
            targets, first = np.unique(pos, return_index=True)
            free = slots[targets] == 0
            slots[targets[free]] = ordinals[first[free]] + 1
            left = np.ones(ordinals.size, dtype=bool)
            left[first[free]] = False
            ordinals, pos = ordinals[left], (pos[left] + 1) & mask
        self._slots, self._slot, self._mask = slots, slots.data, mask


# -- the duplicates file ---------------------------------------------------------------------


class Duplicate(NamedTuple):
    """A frame that is not computed: its position among the job's frames (0-based, input
    order), the ordinal of the identical frame that is, and its own id."""

    position: int
    ordinal: int
    frame_id: str

    def row(self) -> str:
        return f"{self.position}\t{self.ordinal}\t{self.frame_id}\n"


def read_duplicates(path: Path) -> Iterator[Duplicate]:
    """The duplicates of a job in position order; none when the file does not exist."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            position, ordinal, frame_id = line.rstrip("\n").split("\t")
            yield Duplicate(int(position), int(ordinal), frame_id)


def distinct_frames(
    frames: Iterable[Frame], table: FrameTable | None, duplicates: TextIO
) -> Iterator[Frame]:
    """The frames to compute, in order: without a table every frame, with one the first frame
    of each key; each other frame is written to ``duplicates``."""
    if table is None:
        yield from frames
        return
    for position, frame in enumerate(frames):
        ordinal, new = table.add(frame)
        if new:
            yield frame
        else:
            duplicates.write(Duplicate(position, ordinal, frame.id).row())


class ScoreStore:
    """P(others), P(virus) of every computed frame by ordinal, for the duplicates to copy at
    assembly: 8 bytes a distinct frame, in blocks (nothing is copied as it grows)."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self.size = 0

    def append(self, p_others: np.float32, p_virus: np.float32) -> None:
        block, offset = divmod(self.size, 1 << BLOCK_BITS)
        if block == len(self._blocks):
            self._blocks.append(np.empty((1 << BLOCK_BITS, 2), dtype=np.float32))
        self._blocks[block][offset] = (p_others, p_virus)
        self.size += 1

    def get(self, ordinal: int) -> tuple[np.float32, np.float32]:
        if not 0 <= ordinal < self.size:
            raise IndexError(f"no computed frame {ordinal} yet")
        row = self._blocks[ordinal >> BLOCK_BITS][ordinal & ((1 << BLOCK_BITS) - 1)]
        return row[0], row[1]
