"""Shards: fixed-size slices of one input's frame stream, and their result files.

A shard's boundaries depend only on the input and the shard size, so a resumed run cuts the
same shards again and can skip the finished ones. With deduplication (``core/dedup.py``) the
stream cut is that of the job's distinct frames. A result file holds the shard's rows in the
``prediction_results.txt`` format behind a header with a SHA-256 of the rows, so a truncated
or altered file is detected and recomputed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from virnucpro_tui.core.atomic import atomic_text_writer
from virnucpro_tui.core.outputs import Prediction, parse_prediction_rows, predictions_from_arrays
from virnucpro_tui.core.translation import Frame

SHARD_MAGIC = "#virnucpro-shard v1"


@dataclass
class Shard:
    """Work for one worker task: the frames of one slice of one input."""

    job: str
    index: int
    frames: list[Frame] = field(default_factory=list)
    save_features: bool = False  # the worker also writes the frames' features (--save-features)

    @property
    def key(self) -> str:
        return f"{self.job}/{self.index:06d}"

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class ShardResult:
    job: str
    index: int
    frame_ids: list[str]
    probs: np.ndarray  # (n, 2) float32: P(others), P(virus)
    seconds: float = 0.0
    tokens: int = 0
    worker: int | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)  # GPU-synchronised, sum ~ seconds
    features: np.ndarray | None = None  # (n, dim) float32, when the shard asked for them

    def predictions(self) -> list[Prediction]:
        return predictions_from_arrays(self.frame_ids, self.probs)


class CorruptShardError(Exception):
    """A shard result file is truncated, altered or belongs to another shard."""


def iter_shards(
    frames: Iterable[Frame], job: str, shard_size: int, save_features: bool = False
) -> Iterator[Shard]:
    shard = Shard(job, 0, save_features=save_features)
    for frame in frames:
        shard.frames.append(frame)
        if len(shard.frames) == shard_size:
            yield shard
            shard = Shard(job, shard.index + 1, save_features=save_features)
    if shard.frames:
        yield shard


def shard_path(shards_dir: str | Path, job: str, index: int) -> Path:
    return Path(shards_dir) / job / f"{index:06d}.tsv"


def shard_features_path(shards_dir: str | Path, job: str, index: int) -> Path:
    """The shard's features (``run --save-features``), next to its result."""
    return Path(shards_dir) / job / f"{index:06d}.features.safetensors"


def _body(preds: Iterable[Prediction]) -> str:
    return "".join(p.row() for p in preds)


def write_shard_result(path: str | Path, result: ShardResult) -> None:
    body = _body(result.predictions())
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    header = (
        f"{SHARD_MAGIC} job={result.job} index={result.index} frames={len(result.frame_ids)} "
        f"sha256={digest}\n"
    )
    with atomic_text_writer(path) as out:
        out.write(header)
        out.write(body)


def read_shard_rows(
    path: str | Path, job: str, index: int, expected_ids: list[str] | None = None
) -> list[Prediction]:
    """Read and verify a shard result; raise :class:`CorruptShardError` if anything is off."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptShardError(f"{path}: unreadable ({exc})") from None
    header, _, body = text.partition("\n")
    fields = dict(kv.split("=", 1) for kv in header.removeprefix(SHARD_MAGIC).split() if "=" in kv)
    if (
        not header.startswith(SHARD_MAGIC)
        or fields.get("job") != job
        or fields.get("index") != str(index)
    ):
        raise CorruptShardError(f"{path}: not the result of shard {job}/{index}")
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != fields.get("sha256"):
        raise CorruptShardError(f"{path}: checksum mismatch (truncated or altered)")
    try:
        rows = list(parse_prediction_rows(body.splitlines(keepends=True)))
    except ValueError as exc:
        raise CorruptShardError(f"{path}: malformed row ({exc})") from None
    if str(len(rows)) != fields.get("frames"):
        raise CorruptShardError(f"{path}: row count differs from its header")
    if expected_ids is not None and [r.frame_id for r in rows] != expected_ids:
        raise CorruptShardError(f"{path}: frame ids differ from this input's shard {index}")
    return rows
