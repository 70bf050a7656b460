"""Check models/fp8_gelu.py's Triton kernel on a CPU with Triton's interpreter (no GPU).

    pip install triton && TRITON_INTERPRET=1 .venv/bin/python scripts/fp8_kernel_interpreter_check.py

The interpreter's float8 conversion rounds some values differently from the hardware's (7.78
becomes 4.0, not 8.0), so the kernel's bytes are compared with the interpreter's conversion of
the reference's fp32 values (``gelu_quantize_reference`` before its cast): that checks the
kernel's arithmetic (GELU, row maximum, scale, clamp) and its indexing. On a GPU,
scripts/gpu_speed_probe.py compares the bytes with the reference directly.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print("set TRITON_INTERPRET=1 (and pip install triton)", file=sys.stderr)
        return 2
    import triton
    import triton.language as tl

    from virnucpro_tui.models.fp8 import FP8, FP8_MAX, MIN_SCALE_AMAX
    from virnucpro_tui.models.fp8_gelu import gelu_quantize_rows

    @triton.jit  # type: ignore[misc,unused-ignore]
    def convert(x_ptr, q_ptr, n, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def,unused-ignore]
        cols = tl.arange(0, BLOCK)
        inside = cols < n
        x = tl.load(x_ptr + cols, mask=inside)
        tl.store(q_ptr + cols, x.to(q_ptr.dtype.element_ty), mask=inside)

    torch.manual_seed(0)
    x = torch.randn(37, 1000, dtype=torch.bfloat16) * 2
    x[3] = 0  # a row of zeros
    q, scale = gelu_quantize_rows(x)
    g = F.gelu(x.float())
    expected_scale = g.abs().amax(dim=-1, keepdim=True).clamp(min=MIN_SCALE_AMAX) / FP8_MAX
    values = (g / expected_scale).clamp(-FP8_MAX, FP8_MAX).flatten().contiguous()
    converted = torch.empty(values.numel(), dtype=FP8)
    convert[(1,)](values, converted, values.numel(), BLOCK=triton.next_power_of_2(values.numel()))
    same = q.flatten().view(torch.uint8) == converted.view(torch.uint8)
    print(f"scales equal: {torch.equal(scale, expected_scale)}")
    print(f"bytes equal: {int(same.sum())} of {same.numel()}")
    for got, want, value in zip(
        q.flatten().float()[~same], converted.float()[~same], values[~same], strict=True
    ):
        print(f"  differs: kernel {float(got)}, reference {float(want)}, value {float(value)}")
    return 0 if torch.equal(scale, expected_scale) and float(same.float().mean()) > 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
