"""``--precision fp8``: ESM-2's GELU and the FP8 quantisation of its output in one pass.

Each layer's feed-forward computes ``fc2(gelu(fc1(x)))``. With torchao's dynamic row-wise
quantisation the GELU, the row maxima and the cast to float8 ran as one compiled kernel that
read each 10,240-wide row twice; it took 56 of the 298 ms of an ESM-2 batch on an H100
(docs/benchmarks.md#levers-measured-2026-12-07). Here one Triton program holds a whole row: it
reads it once, applies the exact GELU, takes the row's absolute maximum and writes the float8
row and its scale; the product is then one row-wise scaled FP8 GEMM (``torch._scaled_mm``),
the same cuBLAS kernel torchao calls. Scales follow torchao's rule: ``amax / 448`` per row.

Imported only on a GPU with ``--precision fp8`` and ``EngineSettings.fp8_gelu_kernel`` (off
until its speed is measured on a GPU; Triton comes with the CUDA build of torch).
"""

from __future__ import annotations

from typing import Any

import torch
import triton  # type: ignore[import-not-found,unused-ignore]
import triton.language as tl  # type: ignore[import-not-found,unused-ignore]
from torch import nn
from torch.library import triton_op, wrap_triton

from virnucpro_tui.models.fp8 import FP8, FP8_MAX, MIN_SCALE_AMAX, quantize_weight_rows


@triton.jit  # type: ignore[misc,unused-ignore]
def _gelu_quantize_kernel(  # type: ignore[no-untyped-def,unused-ignore]
    x_ptr,
    q_ptr,
    scale_ptr,
    n_cols,
    BLOCK: tl.constexpr,
    LIMIT: tl.constexpr,  # FP8_MAX: a Triton kernel reads no module globals
    MIN_AMAX: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
    g = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    amax = tl.max(tl.abs(g), axis=0)
    scale = tl.maximum(amax, MIN_AMAX) / LIMIT
    q = tl.clamp(g / scale, -LIMIT, LIMIT)
    tl.store(q_ptr + row * n_cols + cols, q.to(q_ptr.dtype.element_ty), mask=inside)
    tl.store(scale_ptr + row, scale)


@triton_op("virnucpro::gelu_quantize_rows", mutates_args=())
def gelu_quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``gelu(x)`` of a 2-D tensor as float8 rows and their fp32 scales ``[rows, 1]``."""
    x = x.contiguous()
    rows, cols = x.shape
    q = torch.empty((rows, cols), dtype=FP8, device=x.device)
    scale = torch.empty((rows, 1), dtype=torch.float32, device=x.device)
    wrap_triton(_gelu_quantize_kernel)[(rows,)](x, q, scale, cols, **launch_options(cols))
    return q, scale


def launch_options(cols: int) -> dict[str, Any]:
    """The kernel's compile-time arguments and warps for rows ``cols`` wide (also what the
    tests compile it with for Hopper, without a GPU)."""
    block = triton.next_power_of_2(cols)
    return {
        "BLOCK": block,
        "LIMIT": FP8_MAX,
        "MIN_AMAX": MIN_SCALE_AMAX,
        # 8 warps: 0.98 ms a 40,488 x 10,240 call on an H100; 16 warps: 1.24 ms
        "num_warps": 8 if block >= 2048 else 4,
    }


class GeluFp8Linear(nn.Module):
    """``linear(gelu(h))`` with the GELU and the activation's quantisation in one pass and the
    product in FP8 (row-wise scales); returns ``h``'s dtype."""

    weight_fp8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        data, scale = quantize_weight_rows(linear.weight)
        self.register_buffer("weight_fp8", data.contiguous())
        self.register_buffer("weight_scale", scale.t().contiguous())  # [1, out]
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        flat = h.reshape(-1, h.shape[-1])
        q, scale = gelu_quantize_rows(flat)
        bias = None if self.bias is None else self.bias.to(h.dtype)
        out = torch._scaled_mm(
            q,
            self.weight_fp8.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=bias,
            out_dtype=h.dtype,
            use_fast_accum=True,
        )
        return out.view(*h.shape[:-1], self.out_features)


def fuse_gelu_into_fc2(layers: Any) -> None:
    """Give each fast ESM-2 layer a :class:`GeluFp8Linear` as ``fc2`` (its ``fc1`` then returns
    the pre-activation); call before torchao quantises the remaining linear maps."""
    for layer in layers:
        layer.fc2 = GeluFp8Linear(layer.fc2)
        layer.gelu_in_fc2 = True
