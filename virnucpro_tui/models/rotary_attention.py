"""ESM-2's rotary embedding and attention in one Triton kernel, read straight from the fused
QKV product.

With PyTorch's flash kernel an ESM-2 layer runs two passes for its attention: Inductor's
kernel that splits the QKV product into q, k and v and rotates q and k (it reads and writes
every value once more), then the attention. On an H100 batch of 241 proteins the split took
13.2 ms and the attention 32.5 ms of 411.8 (fp8: 13.7 and 29.3 of 306.4), while the attention's
reads and writes need about 9 ms at the card's bandwidth
(docs/benchmarks.md#levers-measured-2026-12-07). Here each program loads one block of queries
and every key and value of one head from the QKV product, rotates q and k in registers (in
fp32, rounded once to the model's dtype) and runs the online softmax over key blocks, skipping
padded keys. The output is written as ``[batch, tokens, heads * head_dim]``, what ``out_proj``
reads. The query scale is folded into the QKV weights (models/fast.py), so the kernel applies
none.

Imported only where the engine asks for it (``EngineSettings.esm_attention="rotary-fused"``)
and Triton is installed; the tests run it under Triton's interpreter and compile it for Hopper.
"""

from __future__ import annotations

from typing import Any

import torch
import triton  # type: ignore[import-not-found,unused-ignore]
import triton.language as tl  # type: ignore[import-not-found,unused-ignore]
from torch.library import triton_op, wrap_triton

LOG2E = 1.4426950408889634


@triton.jit  # type: ignore[misc,unused-ignore]
def _rotated(  # type: ignore[no-untyped-def,unused-ignore]
    rows_ptr, cos_ptr, sin_ptr, offs, inside, HALF: tl.constexpr
):
    """Rows ``offs`` of one head of q or k (``rows_ptr``: the head's first value at row 0),
    rotated: the two halves ``(x1 * c - x2 * s, x2 * c + x1 * s)`` in fp32."""
    cols = tl.arange(0, HALF)
    x1 = tl.load(rows_ptr + cols[None, :], mask=inside[:, None], other=0.0).to(tl.float32)
    x2 = tl.load(rows_ptr + HALF + cols[None, :], mask=inside[:, None], other=0.0).to(tl.float32)
    table = offs[:, None] * (2 * HALF) + cols[None, :]  # cos and sin repeat over the halves
    c = tl.load(cos_ptr + table, mask=inside[:, None], other=0.0).to(tl.float32)
    s = tl.load(sin_ptr + table, mask=inside[:, None], other=0.0).to(tl.float32)
    return x1 * c - x2 * s, x2 * c + x1 * s


@triton.jit  # type: ignore[misc,unused-ignore]
def _rotary_attention_kernel(  # type: ignore[no-untyped-def,unused-ignore]
    qkv_ptr,
    cos_ptr,
    sin_ptr,
    keep_ptr,
    out_ptr,
    T,
    H,
    HAS_MASK: tl.constexpr,
    D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SCALE_LOG2: tl.constexpr,  # log2(e): the softmax runs in base 2
):
    HALF: tl.constexpr = D // 2
    dtype = out_ptr.dtype.element_ty
    head = tl.program_id(1)
    b = (head // H).to(tl.int64)
    h = head % H
    row_stride = 3 * H * D  # one token's q, k and v in the QKV product
    base = qkv_ptr + b * T * row_stride + h * D
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    in_m = offs_m < T
    q1, q2 = _rotated(base + offs_m[:, None] * row_stride, cos_ptr, sin_ptr, offs_m, in_m, HALF)
    q1, q2 = q1.to(dtype), q2.to(dtype)
    best = tl.full([BLOCK_M], float("-inf"), tl.float32)
    total = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    dims = tl.arange(0, D)
    for start in range(0, T, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        in_n = offs_n < T
        key_rows = base + H * D + offs_n[:, None] * row_stride
        k1, k2 = _rotated(key_rows, cos_ptr, sin_ptr, offs_n, in_n, HALF)
        scores = tl.dot(q1, tl.trans(k1.to(dtype))) + tl.dot(q2, tl.trans(k2.to(dtype)))
        scores = scores * SCALE_LOG2
        valid = in_n
        if HAS_MASK:
            keep = tl.load(keep_ptr + b * T + offs_n, mask=in_n, other=0)
            valid = valid & (keep != 0)
        scores = tl.where(valid[None, :], scores, float("-inf"))
        new_best = tl.maximum(best, tl.max(scores, 1))
        shift = tl.where(new_best == float("-inf"), 0.0, new_best)  # a row with no key yet
        p = tl.exp2(scores - shift[:, None])
        kept = tl.exp2(best - shift)
        total = total * kept + tl.sum(p, 1)
        values = tl.load(
            base + 2 * H * D + offs_n[:, None] * row_stride + dims[None, :],
            mask=in_n[:, None],
            other=0.0,
        )
        acc = acc * kept[:, None] + tl.dot(p.to(dtype), values)
        best = new_best
    out = acc / total[:, None]
    rows = out_ptr + (b * T + offs_m[:, None]) * (H * D) + h * D + dims[None, :]
    tl.store(rows, out.to(dtype), mask=in_m[:, None])


def fits(head_dim: int) -> bool:
    """The kernel's shapes: a power-of-two head of 32 to 128 values (ESM-2 3B: 64)."""
    return 32 <= head_dim <= 128 and head_dim & (head_dim - 1) == 0


def launch_options(head_dim: int) -> dict[str, Any]:
    """Compile-time arguments and warps (also what the tests compile it with for Hopper). The
    same for every length: a choice made on the length would add a guard on it to the compiled
    graph, and a batch of short proteins would compile the layer again."""
    return {
        "D": head_dim,
        "BLOCK_M": 64,
        "BLOCK_N": 64,
        "SCALE_LOG2": LOG2E,
        "num_warps": 4,
        "num_stages": 2,
    }


@triton_op("virnucpro::rotary_attention", mutates_args=())
def rotary_attention(
    qkv: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    keep: torch.Tensor | None,
    heads: int,
) -> torch.Tensor:
    """Attention of a fused QKV product ``[batch, tokens, 3 * heads * head_dim]`` (q scaled
    already) with q and k rotated by ``cos``/``sin`` ``[tokens, head_dim]``; ``keep``
    ``[batch, tokens]`` (bool) marks the keys to attend to, ``None`` all of them. Returns
    ``[batch, tokens, heads * head_dim]``."""
    qkv, cos, sin = qkv.contiguous(), cos.contiguous(), sin.contiguous()
    b, t, width = qkv.shape
    head_dim = width // (3 * heads)
    out = torch.empty((b, t, heads * head_dim), dtype=qkv.dtype, device=qkv.device)
    options = launch_options(head_dim)
    grid = (triton.cdiv(t, options["BLOCK_M"]), b * heads)
    mask = keep.contiguous() if keep is not None else qkv  # any pointer: HAS_MASK is False
    wrap_triton(_rotary_attention_kernel)[grid](
        qkv, cos, sin, mask, out, t, heads, HAS_MASK=keep is not None, **options
    )
    return out
