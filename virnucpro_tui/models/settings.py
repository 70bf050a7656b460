"""Model and engine settings as plain data (no torch import), so they can cross process
boundaries and be pickled into a spawned worker before that worker imports torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro_tui.errors import InputError

PRECOMPILE_ENV = "VIRNUCPRO_TUI_PRECOMPILE"
STAGED_COPY_ENV = "VIRNUCPRO_TUI_STAGED_COPY"
COMPILE_BESIDE_ENV = "VIRNUCPRO_TUI_COMPILE_BESIDE"
ESM_ATTENTION_ENV = "VIRNUCPRO_TUI_ESM_ATTENTION"
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "fp8")
ESM_ATTENTIONS = ("flash", "cudnn", "rotary-fused")
"""``auto``: fp32 on CPU, the measured half-precision mix on GPU (docs/benchmarks.md#fidelity).
``fp8``: ESM-2's matrix products in FP8 (GPU of compute capability 8.9+, torchao)."""


def _env_flag(name: str) -> bool | None:
    """``1``: on, ``0``: off, unset (or anything else): the setting's own default."""
    return {"1": True, "0": False}.get(os.environ.get(name, ""))


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
    compile: bool | None = None  # None: on GPU in half precision; True: anywhere (tests)
    eager_load: bool | None = None  # None: load at worker start on a GPU, at the first task on CPU
    compile_cache: Path | None = None  # None: the user's cache dir (models/compile_cache.py)
    # GPU fast paths (docs/benchmarks.md#what-was-tried): ESM-2's fc1 GELU in the cuBLASLt
    # epilogue (tanh approximation, measured as faithful as the exact GELU) unless exact_gelu;
    # DNABERT-S attention inside FlexAttention ("flex", measured 13% faster on an H200) or with
    # the ALiBi bias tensor ("bias"); ESM-2 attention with PyTorch's flash kernel ("flash") or
    # cuDNN's first ("cudnn"; docs/benchmarks.md#speed-levers).
    exact_gelu: bool = False
    # fp8: GELU + FP8 quantisation of fc2's input in one Triton pass (models/fp8_gelu.py;
    # ESM-2 fp8 800 -> 829 proteins/s on an H100,
    # docs/benchmarks.md#kernels-measured-2026-12-07-afternoon)
    fp8_gelu_kernel: bool = True
    # DNABERT-S (flex): the gated product and its GELU in one Triton kernel
    # (models/glu_gelu.py); off: +1.2% on an H100, within run-to-run spread
    dnabert_glu_kernel: bool = False
    # Layers compiled ahead of time and saved whole, so a warm start skips Dynamo's tracing
    # (models/precompile.py). None: on a GPU, except for fp8 (not measured there);
    # VIRNUCPRO_TUI_PRECOMPILE=1 or 0 decides. Warm H100 start: models ready in 2.8-3.3 s, not 10.3.
    precompile: bool | None = field(default_factory=lambda: _env_flag(PRECOMPILE_ENV))
    # Weights sent to the GPU through page-locked buffers on a stream of their own
    # (models/device_copy.py); off: not separated from noise on an H100.
    # VIRNUCPRO_TUI_STAGED_COPY=1 turns it on.
    staged_copy: bool = field(default_factory=lambda: os.environ.get(STAGED_COPY_ENV) == "1")
    # With precompile, on a cold cache: both models run uncompiled while processes beside
    # compile and save their layers, and compiled from the first batch after
    # (models/beside.py). None: on where precompile is; VIRNUCPRO_TUI_COMPILE_BESIDE=1 or 0
    # decides. Cold H100 start: first shard at 6.6-7.1 s, not 26.2.
    compile_beside: bool | None = field(default_factory=lambda: _env_flag(COMPILE_BESIDE_ENV))
    dnabert_attention: str = "flex"
    esm_attention: str = field(default_factory=lambda: os.environ.get(ESM_ATTENTION_ENV, "flash"))

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(
                f"--precision {self.precision}: expected one of {', '.join(PRECISIONS)}"
            )
        if self.dnabert_attention not in ("bias", "flex"):
            raise InputError(f"dnabert_attention {self.dnabert_attention!r}: expected bias or flex")
        if self.esm_attention not in ESM_ATTENTIONS:
            raise InputError(
                f"esm_attention {self.esm_attention!r}: expected one of {', '.join(ESM_ATTENTIONS)}"
            )
