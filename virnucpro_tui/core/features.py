"""Saved features (``run --save-features``, docs/features.md): per-shard feature files and the
streaming writers of a job's assembled features file.

A frame's feature vector is what the classifier reads: the DNABERT-S mean embedding followed by
the ESM-2 mean embedding (768 + 2560 = 3328 float32 values with the published models).

- **Per shard** (written by the worker next to the shard result): a safetensors file holding one
  tensor ``features`` [frames, dim] and, in its metadata, the job, the shard index, the frame
  count and SHA-256 digests of the data and of the frame ids, so a truncated, altered or stale
  file is detected and the shard recomputed.
- **Per job** (assembled in ``prediction_results.txt`` order, streamed, never held in memory):
  ``prediction_features.pt`` (the published ``{'ids': [...], 'data': Tensor[N, dim]}``, written
  by ``core/torch_archive.py``) or ``prediction_features.safetensors`` (one tensor ``data``) with
  the ids, one per line, in ``prediction_features.ids.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from virnucpro_tui.core.atomic import PartialFile, atomic_write_bytes
from virnucpro_tui.core.shards import CorruptShardError, shard_features_path

FEATURES_PT = "prediction_features.pt"
FEATURES_SAFETENSORS = "prediction_features.safetensors"
FEATURES_IDS = "prediction_features.ids.txt"
FEATURE_FORMATS = ("pt", "safetensors")
FEATURE_FILES = (FEATURES_PT, FEATURES_SAFETENSORS, FEATURES_IDS)
PUBLISHED_DIM = 3328  # DNABERT-S 768 + ESM-2 3B 2560; the width of a job without any frame
SHARD_FEATURES_FORMAT = "virnucpro-shard-features/1"
FEATURES_FORMAT = "virnucpro-tui-features/1"
DTYPE = np.dtype("<f4")
READ_BLOCK = 16 * 2**20
MAX_HEADER = 2**24  # a safetensors header larger than this is not one of ours


def ids_digest(ids: Iterable[str]) -> str:
    """SHA-256 of the frame ids, one per line."""
    digest = hashlib.sha256()
    for frame_id in ids:
        digest.update(frame_id.encode() + b"\n")
    return digest.hexdigest()


# -- per-shard files ------------------------------------------------------------------------------


def write_shard_features(
    path: str | Path, job: str, index: int, ids: list[str], features: np.ndarray
) -> None:
    """The shard's features [len(ids), dim], atomically, with their checksums."""
    from safetensors.numpy import save

    data = np.ascontiguousarray(features, dtype=DTYPE)
    if data.ndim != 2 or data.shape[0] != len(ids):
        raise ValueError(f"features of shape {data.shape} for {len(ids)} frames")
    metadata = {
        "format": SHARD_FEATURES_FORMAT,
        "job": job,
        "index": str(index),
        "frames": str(len(ids)),
        "sha256": hashlib.sha256(data.data.cast("B")).hexdigest(),
        "ids_sha256": ids_digest(ids),
    }
    atomic_write_bytes(path, save({"features": data}, metadata=metadata))


def read_safetensors_header(fh: BinaryIO, path: Path) -> tuple[dict[str, object], int]:
    """The JSON header of a safetensors file and the offset of its data."""
    raw = fh.read(8)
    if len(raw) != 8:
        raise CorruptShardError(f"{path}: truncated (no header)")
    (size,) = struct.unpack("<Q", raw)
    if size > MAX_HEADER:
        raise CorruptShardError(f"{path}: not a features file")
    try:
        header = json.loads(fh.read(size))
    except (ValueError, UnicodeDecodeError):
        raise CorruptShardError(f"{path}: unreadable header") from None
    if not isinstance(header, dict):
        raise CorruptShardError(f"{path}: unreadable header")
    return header, 8 + size


@dataclass
class ShardFeatures:
    """One shard's feature file, its header checked: rows are read by position."""

    path: Path
    frames: int
    dim: int
    data_offset: int
    sha256: str
    ids_sha256: str
    fd: int = -1

    @classmethod
    def open(cls, path: Path, job: str, index: int) -> ShardFeatures:
        """Raise :class:`CorruptShardError` unless ``path`` is shard ``job/index``'s features
        file with as many bytes as its header says (the data is checked by ``verify``)."""
        try:
            with path.open("rb") as fh:
                header, offset = read_safetensors_header(fh, path)
            size = path.stat().st_size
        except OSError as exc:
            raise CorruptShardError(f"{path}: unreadable ({exc})") from None
        meta = header.get("__metadata__")
        tensor = header.get("features")
        if (
            not isinstance(meta, dict)
            or not isinstance(tensor, dict)
            or meta.get("format") != SHARD_FEATURES_FORMAT
            or meta.get("job") != job
            or meta.get("index") != str(index)
        ):
            raise CorruptShardError(f"{path}: not the features of shard {job}/{index}")
        shape = tensor.get("shape")
        if (
            tensor.get("dtype") != "F32"
            or not isinstance(shape, list)
            or len(shape) != 2
            or str(shape[0]) != meta.get("frames")
        ):
            raise CorruptShardError(f"{path}: unexpected tensor {tensor}")
        frames, dim = int(shape[0]), int(shape[1])
        if size != offset + frames * dim * DTYPE.itemsize:
            raise CorruptShardError(f"{path}: {size} bytes, not what its header says (truncated?)")
        return cls(path, frames, dim, offset, str(meta.get("sha256")), str(meta.get("ids_sha256")))

    def verify(self, ids: list[str] | None = None) -> None:
        """Check the data's checksum and, given the shard's frame ids, theirs."""
        if ids is not None and (len(ids) != self.frames or ids_digest(ids) != self.ids_sha256):
            raise CorruptShardError(f"{self.path}: frame ids differ from this shard's")
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            fh.seek(self.data_offset)
            while block := fh.read(READ_BLOCK):
                digest.update(block)
        if digest.hexdigest() != self.sha256:
            raise CorruptShardError(f"{self.path}: checksum mismatch (truncated or altered)")

    def read_rows(self, start: int, count: int) -> np.ndarray:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_RDONLY)
        nbytes = count * self.dim * DTYPE.itemsize
        raw = os.pread(self.fd, nbytes, self.data_offset + start * self.dim * DTYPE.itemsize)
        if len(raw) != nbytes:
            raise CorruptShardError(f"{self.path}: truncated")
        return np.frombuffer(raw, dtype=DTYPE).reshape(count, self.dim)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def verify_shard_features(path: Path, job: str, index: int, ids: list[str]) -> None:
    features = ShardFeatures.open(path, job, index)
    features.verify(ids)


class FeatureRows:
    """A job's per-shard feature files as one table of rows by ordinal (the number of a computed
    frame, ``core/dedup.py``): shard ``o // shard_size``, row ``o % shard_size``.

    ``take`` is given each assembled frame's ordinal. A new ordinal is the next row in order:
    it streams, and each shard's checksums (data and frame ids) are checked once its last row
    is taken. An earlier ordinal (a duplicate) is read back from its file."""

    def __init__(
        self, shards_dir: Path, job: str, shard_count: int, shard_size: int, keep_open: int = 8
    ) -> None:
        self.shards_dir, self.job = shards_dir, job
        self.shard_count, self.shard_size, self.keep_open = shard_count, shard_size, keep_open
        self.next_new = 0  # the next ordinal in order
        self._open: dict[int, ShardFeatures] = {}  # insertion order: least recently opened first
        self._data = hashlib.sha256()
        self._ids = hashlib.sha256()
        self.dim = 0
        self.dim = self._shard(0).dim if shard_count else PUBLISHED_DIM

    def take(self, ids: list[str], ordinals: list[int]) -> np.ndarray:
        """The rows of these frames (``ids``, for the checksums of new rows), in order."""
        out = np.empty((len(ordinals), self.dim), dtype=DTYPE)
        i = 0
        while i < len(ordinals):
            first = ordinals[i]
            index, row = divmod(first, self.shard_size)
            new = first == self.next_new
            if not new and not 0 <= first < self.next_new:
                raise CorruptShardError(f"job {self.job}: frame {first} taken out of order")
            j = i + 1
            while (
                j < len(ordinals)
                and ordinals[j] == first + j - i
                and (row + j - i) < self.shard_size
                and (new or ordinals[j] < self.next_new)
            ):
                j += 1
            shard = self._shard(index)
            if row + j - i > shard.frames:
                raise CorruptShardError(f"{shard.path}: has {shard.frames} rows, not {row + j - i}")
            out[i:j] = block = shard.read_rows(row, j - i)
            if new:
                self._consume(shard, row, ids[i:j], block)
            i = j
        return out

    def _consume(self, shard: ShardFeatures, row: int, ids: list[str], block: np.ndarray) -> None:
        if row == 0:
            self._data, self._ids = hashlib.sha256(), hashlib.sha256()
        self._data.update(block.data.cast("B"))
        for frame_id in ids:
            self._ids.update(frame_id.encode() + b"\n")
        self.next_new += len(ids)
        if row + len(ids) == shard.frames:
            if self._data.hexdigest() != shard.sha256:
                raise CorruptShardError(f"{shard.path}: checksum mismatch (truncated or altered)")
            if self._ids.hexdigest() != shard.ids_sha256:
                raise CorruptShardError(f"{shard.path}: frame ids differ from the shard result's")

    def finish(self) -> None:
        """Check that every row of every shard was taken."""
        total = sum(self._shard(i).frames for i in range(self.shard_count))
        if self.next_new != total:
            raise CorruptShardError(
                f"job {self.job}: {total} feature rows in its shards, {self.next_new} assembled"
            )

    def close(self) -> None:
        for shard in self._open.values():
            shard.close()
        self._open.clear()

    def _shard(self, index: int) -> ShardFeatures:
        shard = self._open.pop(index, None)
        if shard is None:
            if not 0 <= index < self.shard_count:
                raise CorruptShardError(f"job {self.job}: no shard {index} of features")
            path = shard_features_path(self.shards_dir, self.job, index)
            shard = ShardFeatures.open(path, self.job, index)
            last = index == self.shard_count - 1
            if (not last and shard.frames != self.shard_size) or (
                self.dim and shard.dim != self.dim
            ):
                raise CorruptShardError(f"{path}: {shard.frames} x {shard.dim}, not this job's")
            if len(self._open) >= self.keep_open:
                self._open.pop(next(iter(self._open))).close()
        self._open[index] = shard
        return shard


# -- a job's assembled features -------------------------------------------------------------------


class FeatureWriter(Protocol):
    """Streams a job's features, ``rows`` of ``dim`` values, in order; nothing has its final
    name before ``commit`` (``abort`` removes what was written)."""

    paths: tuple[Path, ...]

    def write(self, ids: list[str], rows: np.ndarray) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


@dataclass
class RowCount:
    """What a feature writer promised (``rows`` x ``dim``) and what it has written."""

    rows: int
    dim: int
    written: int = 0

    def take(self, ids: list[str], rows: np.ndarray) -> np.ndarray:
        """``rows`` as little-endian float32, checked against the promise, and counted."""
        block = np.ascontiguousarray(rows, dtype=DTYPE)
        if block.shape != (len(ids), self.dim) or self.written + len(ids) > self.rows:
            raise ValueError(
                f"rows of shape {block.shape} after {self.written} of {self.rows} x {self.dim}"
            )
        self.written += len(ids)
        return block

    def check_complete(self) -> None:
        if self.written != self.rows:
            raise ValueError(f"{self.written} feature rows written, {self.rows} expected")


class SafetensorsFeatureWriter:
    """``prediction_features.safetensors`` (tensor ``data`` [rows, dim], float32) and the ids in
    ``prediction_features.ids.txt``: the header first (the size is known), then the rows."""

    def __init__(self, out_dir: Path, rows: int, dim: int) -> None:
        self.count = RowCount(rows, dim)
        self.paths: tuple[Path, ...] = (out_dir / FEATURES_SAFETENSORS, out_dir / FEATURES_IDS)
        header = {
            "__metadata__": {
                "format": FEATURES_FORMAT,
                "ids": FEATURES_IDS,
                "columns": "DNABERT-S mean embedding, then ESM-2 mean embedding",
            },
            "data": {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, rows * dim * 4]},
        }
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
        self.data = PartialFile(self.paths[0])
        self.ids = PartialFile(self.paths[1])
        self.data.fh.write(struct.pack("<Q", len(encoded)) + encoded)

    def write(self, ids: list[str], rows: np.ndarray) -> None:
        block = self.count.take(ids, rows)
        self.data.fh.write(block.data.cast("B"))
        self.ids.fh.write("".join(f"{i}\n" for i in ids).encode())

    def commit(self) -> None:
        self.count.check_complete()
        self.ids.commit()
        self.data.commit()

    def abort(self) -> None:
        self.data.abort()
        self.ids.abort()


def feature_paths(fmt: str, out_dir: Path) -> tuple[Path, ...]:
    """The files a job's features go to."""
    if fmt == "safetensors":
        return (out_dir / FEATURES_SAFETENSORS, out_dir / FEATURES_IDS)
    return (out_dir / FEATURES_PT,)
