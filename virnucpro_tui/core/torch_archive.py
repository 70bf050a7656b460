"""``prediction_features.pt`` streamed in torch's zip format, never held in memory
(docs/features.md#the-pt-file).

``torch.save({'ids': ids, 'data': tensor})`` needs the whole tensor in memory; an input of ten
million frames has 133 GB of features. This writer produces the same archive piece by piece:

- ``archive/data/0``: the storage bytes (float32, little-endian), written into the zip entry
  row block by row block, starting on a 64-byte boundary as torch aligns them (so
  ``torch.load(mmap=True)`` maps them in place);
- ``archive/data.pkl``: the pickle (protocol 2, as torch writes it) of the dict, with the ids
  streamed from a temporary file and the tensor referring to storage ``0`` through
  ``torch._utils._rebuild_tensor_v2``, the only globals being those
  ``torch.load(weights_only=True)`` allows;
- ``byteorder``, ``version``, ``.format_version``, ``.storage_alignment`` and
  ``.data/serialization_id`` as torch writes them.

The zip container (ZIP64 for entries past 4 GiB, CRC-32s) is the standard library's.
The core needs no torch: the globals are written by name.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from virnucpro_tui.core.atomic import PartialFile
from virnucpro_tui.core.features import FEATURES_PT, RowCount

ARCHIVE = "archive"
ALIGNMENT = 64  # torch's storage alignment
APPENDS_BATCH = 1000  # list items per APPENDS, as pickle itself batches them
PADDING_FIELD = b"FB"  # the extra-field id torch pads local headers with
ZIP64_LOCAL_EXTRA = 20  # bytes zipfile adds to a local header written with force_zip64
LOCAL_HEADER = 30
EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same features give the same bytes


def pickle_str(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def pickle_int(n: int) -> bytes:
    if 0 <= n < 256:
        return pickle.BININT1 + bytes([n])
    if -(2**31) <= n < 2**31:
        return pickle.BININT + struct.pack("<i", n)
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(data)]) + data


def pickle_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def pickle_float_tensor(rows: int, dim: int, storage_key: str = "0") -> bytes:
    """A float32 CPU tensor [rows, dim] over storage ``storage_key``, as ``torch.save`` writes it."""
    storage = (
        pickle.MARK
        + pickle_str("storage")
        + pickle_global("torch", "FloatStorage")
        + pickle_str(storage_key)
        + pickle_str("cpu")
        + pickle_int(rows * dim)
        + pickle.TUPLE
        + pickle.BINPERSID
    )
    return (
        pickle_global("torch._utils", "_rebuild_tensor_v2")
        + pickle.MARK
        + storage
        + pickle_int(0)  # storage offset
        + pickle_int(rows)
        + pickle_int(dim)
        + pickle.TUPLE2  # size
        + pickle_int(dim)
        + pickle_int(1)
        + pickle.TUPLE2  # stride
        + pickle.NEWFALSE  # requires_grad
        + pickle_global("collections", "OrderedDict")
        + pickle.EMPTY_TUPLE
        + pickle.REDUCE  # backward hooks: OrderedDict()
        + pickle.TUPLE
        + pickle.REDUCE
    )


def pickle_ids_and_data(ids: Iterator[str], rows: int, dim: int) -> Iterator[bytes]:
    """``{'ids': [...], 'data': tensor}`` as pickle opcodes, the ids in batches."""
    yield pickle.PROTO + bytes([2]) + pickle.EMPTY_DICT + pickle.MARK
    yield pickle_str("ids") + pickle.EMPTY_LIST
    batch: list[bytes] = []
    for frame_id in ids:
        batch.append(pickle_str(frame_id))
        if len(batch) == APPENDS_BATCH:
            yield pickle.MARK + b"".join(batch) + pickle.APPENDS
            batch = []
    if batch:
        yield pickle.MARK + b"".join(batch) + pickle.APPENDS
    yield pickle_str("data") + pickle_float_tensor(rows, dim) + pickle.SETITEMS + pickle.STOP


def _entry(name: str, extra: bytes = b"") -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{ARCHIVE}/{name}", date_time=EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.extra = extra
    return info


def _padding(offset: int, name: str) -> bytes:
    """The extra field that makes an entry's data (written with force_zip64) start aligned."""
    fixed = LOCAL_HEADER + len(f"{ARCHIVE}/{name}".encode()) + ZIP64_LOCAL_EXTRA + 4
    pad = -(offset + fixed) % ALIGNMENT
    return PADDING_FIELD + struct.pack("<H", pad) + bytes(pad)


class PtFeatureWriter:
    """Streams ``prediction_features.pt``: ``write`` adds rows and their ids, ``commit`` writes
    the pickle and the central directory and renames the file into place."""

    def __init__(self, out_dir: Path, rows: int, dim: int) -> None:
        self.count = RowCount(rows, dim)
        self.paths: tuple[Path, ...] = (out_dir / FEATURES_PT,)
        self.file = PartialFile(self.paths[0])
        self.ids = PartialFile(out_dir / f"{FEATURES_PT}.ids")  # never renamed: removed at the end
        self.zip = zipfile.ZipFile(self.file.fh, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.storage = self._open_aligned("data/0")

    def _open_aligned(self, name: str) -> IO[bytes]:
        offset = self.file.fh.tell()
        entry = self.zip.open(_entry(name, _padding(offset, name)), "w", force_zip64=True)
        if self.file.fh.tell() % ALIGNMENT:
            raise RuntimeError(f"{name} is not {ALIGNMENT}-byte aligned in the archive")
        return entry

    def write(self, ids: list[str], rows: np.ndarray) -> None:
        block = self.count.take(ids, rows)
        self.storage.write(block.data.cast("B"))
        self.ids.fh.write("".join(f"{i}\n" for i in ids).encode())

    def commit(self) -> None:
        self.count.check_complete()
        self.storage.close()
        crc = self.zip.getinfo(f"{ARCHIVE}/data/0").CRC
        self.ids.fh.flush()
        self.ids.fh.seek(0)
        ids = (line.decode().rstrip("\n") for line in self.ids.fh)
        with self.zip.open(_entry("data.pkl"), "w", force_zip64=True) as pkl:
            for chunk in pickle_ids_and_data(ids, self.count.rows, self.count.dim):
                pkl.write(chunk)
        pkl_crc = self.zip.getinfo(f"{ARCHIVE}/data.pkl").CRC
        for name, data in (
            (".format_version", b"1"),
            (".storage_alignment", str(ALIGNMENT).encode()),
            ("byteorder", b"little"),
            ("version", b"3\n"),
            (".data/serialization_id", f"{(crc << 32 | pkl_crc):040d}".encode()),
        ):
            self.zip.writestr(_entry(name), data)
        self.zip.close()
        self.file.commit()
        self.ids.abort()

    def abort(self) -> None:
        for close in (self.storage.close, self.zip.close):  # leaves them inert for the collector
            with contextlib.suppress(Exception):
                close()
        self.file.abort()
        self.ids.abort()
