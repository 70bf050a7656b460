"""``--precision fp8``: ESM-2's matrix products in FP8 through torchao (an optional extra).

Weights are quantised once to float8 (e4m3) with one scale per output row; activations are
quantised per row on the fly. Under ``torch.compile`` the activation quantisation fuses into
the kernel that produces the activation (LayerNorm, GELU), and the products run as row-wise
scaled FP8 GEMMs returning bf16. Only the encoder layers' linear maps are quantised: the
embedding, the LayerNorms, attention itself and the classifier stay in higher precision.
Fidelity on random weights is in docs/benchmarks.md; ``check-precision`` judges real ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.precision import FP8_EXTRA

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # torch.finfo(torch.float8_e4m3fn).max
MIN_SCALE_AMAX = 1e-12  # a row of zeros gets a finite scale (and zeros)


def quantize_linears(module: nn.Module) -> None:
    """Quantise every ``nn.Linear`` under ``module`` in place (GPU of compute capability 8.9+)."""
    try:
        from torchao.quantization import (  # type: ignore[import-not-found,unused-ignore]
            Float8DynamicActivationFloat8WeightConfig,
            PerRow,
            quantize_,
        )
    except ImportError as exc:
        raise ModelError(f"--precision fp8 needs torchao ({exc}): {FP8_EXTRA}") from None
    # set_inductor_config=False: it turns on coordinate-descent tuning for every later compile
    # in the process (the fp16 models too), which lengthens compiles.
    config = Float8DynamicActivationFloat8WeightConfig(
        granularity=PerRow(), set_inductor_config=False
    )
    quantize_(module, config, filter_fn=lambda m, _name: isinstance(m, nn.Linear))


def gelu_quantize_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``gelu(x)`` as float8 rows and fp32 scales ``[rows, 1]`` in torch operations: the
    arithmetic of models/fp8_gelu.py's one-pass kernel (which is checked against it)."""
    g = F.gelu(x.float())
    scale = g.abs().amax(dim=-1, keepdim=True).clamp(min=MIN_SCALE_AMAX) / FP8_MAX
    return (g / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def quantize_weight_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A weight ``[out, in]`` as float8 rows and fp32 scales ``[out, 1]`` (torchao's rule)."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=MIN_SCALE_AMAX) / FP8_MAX
    return (w / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale
