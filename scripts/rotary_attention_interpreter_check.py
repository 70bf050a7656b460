"""Check models/rotary_attention.py's Triton kernel on a CPU with Triton's interpreter (no GPU):
against ESM-2's own arithmetic in fp32 (split the QKV product, rotate q and k, attend with the
padded keys masked), with and without padding, at lengths that do and do not fill the blocks.

    pip install triton && TRITON_INTERPRET=1 .venv/bin/python scripts/rotary_attention_interpreter_check.py
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F


def reference(
    qkv: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    keep: torch.Tensor | None,
    heads: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The engine's path before the kernel (models/fast.py) in ``dtype``."""
    from virnucpro_tui.models.esm import apply_rotary

    b, t, width = qkv.shape
    d = width // (3 * heads)
    q, k, v = qkv.to(dtype).view(b, t, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = (
        apply_rotary(q, cos.to(dtype), sin.to(dtype)),
        apply_rotary(k, cos.to(dtype), sin.to(dtype)),
    )
    mask = None if keep is None else keep[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
    return out.transpose(1, 2).reshape(b, t, heads * d)


def loops_over_runtime_bounds() -> None:
    """Triton 3.6's interpreter turns a scalar into an index with ``int()`` of a one-value
    array, which NumPy 2.4 refuses: ``range(0, T, BLOCK)`` over an argument failed. Here it
    takes the value with ``.item()``; compiled kernels are not concerned."""
    from triton.runtime import interpreter

    patch = interpreter._patch_lang_tensor

    def patched(tensor: object, scope: object) -> None:
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))  # type: ignore[attr-defined]

    interpreter._patch_lang_tensor = patched


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print("set TRITON_INTERPRET=1 (and pip install triton)", file=sys.stderr)
        return 2
    loops_over_runtime_bounds()
    from virnucpro_tui.models.esm.encoder import RotaryEmbedding
    from virnucpro_tui.models.rotary_attention import rotary_attention

    torch.manual_seed(0)
    worst = 0.0
    for batch, tokens, heads, head_dim, padded, dtype in (
        (3, 70, 2, 64, True, torch.float16),  # two key blocks, the second part-filled; padded
        (2, 64, 3, 64, False, torch.float16),  # exactly one block
        (2, 21, 2, 32, True, torch.float16),  # fewer tokens than a block, a smaller head
        (2, 200, 1, 64, True, torch.float16),  # four key blocks
        # not bf16 (fp8's activations): Triton 3.6's interpreter multiplies bf16 blocks wrongly
        # (a 16x16 tl.dot off by 1e10); scripts/gpu_rotary_kernel_check.py checks it on a GPU
    ):
        qkv = torch.randn(batch, tokens, 3 * heads * head_dim)
        qkv[..., : heads * head_dim] *= head_dim**-0.5  # the query scale, folded into the weights
        qkv = qkv.to(dtype)
        cos, sin = RotaryEmbedding(head_dim).tables(tokens, dtype)
        keep = None
        if padded:
            lengths = torch.tensor([tokens - 7 * i for i in range(batch)])
            keep = torch.arange(tokens)[None, :] < lengths[:, None]
        got = rotary_attention(qkv, cos, sin, keep, heads).float()
        want = reference(qkv, cos, sin, keep, heads)
        today = reference(qkv, cos, sin, keep, heads, dtype).float()
        error, before = float((got - want).abs().max()), float((today - want).abs().max())
        worst = max(worst, error / before)
        shape = f"{batch}x{tokens} tokens, {heads} heads of {head_dim}, {dtype}, padded {padded}"
        print(f"{shape}: max |kernel - fp32| {error:.2e}, |{dtype} path - fp32| {before:.2e}")
    print(f"worst ratio {worst:.2f}")
    return 0 if worst < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
