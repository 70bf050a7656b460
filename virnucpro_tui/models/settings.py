"""Model and engine settings as plain data (no torch import), so they can cross process
boundaries and be pickled into a spawned worker before that worker imports torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModelFiles:
    esm: Path
    dnabert: Path
    classifier: Path


@dataclass
class EngineSettings:
    """How a worker runs the models. ``auto`` precision: fp32 on CPU, half precision on GPU."""

    precision: str = "auto"
    esm_max_tokens: int | None = None
    dnabert_max_tokens: int | None = None
    max_batch: int = 1024
    chunk_length: int = 500
    force_model_length: bool = False
    compile: bool | None = None  # None: compile on GPU (half precision), never on CPU

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
