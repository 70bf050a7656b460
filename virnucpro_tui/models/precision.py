"""Which precision each model runs in, and where FP8 is possible (docs/benchmarks.md#fidelity).

No torch import at module level: the orchestrator (which never initialises CUDA) refuses an
impossible ``--precision fp8`` here, from NVML's compute capability, before any model loads.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from virnucpro_tui.errors import ModelError

FP8_MIN_CAPABILITY = (8, 9)  # Ada, Hopper and newer have FP8 tensor cores
FP8_EXTRA = "pip install 'virnucpro-tui[gpu-fp8]'"

# Half precision chosen per model by measured fidelity against fp32 (docs/benchmarks.md).
AUTO_GPU_PRECISION = {"esm": "fp16", "dnabert": "bf16"}
# --precision fp8: ESM-2's matrix products in FP8 with bf16 around them (row-wise scaled FP8
# products return bf16); DNABERT-S keeps its measured half precision.
FP8_BASE_PRECISION = {"esm": "bf16", "dnabert": AUTO_GPU_PRECISION["dnabert"]}


@dataclass(frozen=True)
class DeviceCapability:
    """What a worker's device can do, as the main process sees it (NVML, no CUDA)."""

    kind: str  # "cuda" or "cpu"
    name: str
    capability: tuple[int, int] | None = None


def model_precision(precision: str, device_kind: str, model: str) -> str:
    """The floating-point format a model's weights and activations run in (fp8: its base)."""
    if precision == "auto":
        return AUTO_GPU_PRECISION[model] if device_kind == "cuda" else "fp32"
    if precision == "fp8":
        return FP8_BASE_PRECISION[model]
    return precision


def fp8_refusal(device: DeviceCapability) -> str | None:
    """Why this device cannot run ``--precision fp8`` (one line), or None if it can."""
    if device.kind != "cuda":
        return (
            "--precision fp8 needs an NVIDIA GPU of compute capability 8.9 or newer "
            "(Ada, Hopper, Blackwell); this run uses the CPU: use --precision auto"
        )
    cap = device.capability
    if cap is not None and tuple(cap) < FP8_MIN_CAPABILITY:
        return (
            f"--precision fp8 needs compute capability 8.9 or newer; {device.name} has "
            f"{cap[0]}.{cap[1]}: use --precision auto (fp16/bf16)"
        )
    return None


def torchao_available() -> bool:
    return importlib.util.find_spec("torchao") is not None


def require_precision_support(precision: str, devices: Sequence[DeviceCapability]) -> None:
    """Raise ModelError (exit 2) when a device cannot run ``precision``."""
    if precision != "fp8":
        return
    for device in devices:
        reason = fp8_refusal(device)
        if reason is not None:
            raise ModelError(reason)
    if not torchao_available():
        raise ModelError(f"--precision fp8 needs torchao, an optional extra: {FP8_EXTRA}")
