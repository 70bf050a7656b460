"""The fused rotary attention kernel (models/rotary_attention.py) alone on the GPU, at ESM-2 3B's
shapes (40 heads of 64): its error against fp32 next to the error of today's path (split and
rotary compiled by Inductor, then PyTorch's SDPA), and the time of each, padded and not, for
the H100's 168-token batch and for longer proteins at the same token count; then the kernel's
tile shapes. Called by scripts/gpu_speed_probe.py (``rotary_kernel``).
"""

from __future__ import annotations

from typing import Any

HEADS, HEAD_DIM = 40, 64
SHAPES = ((241, 168), (78, 512), (39, 1024))  # batch x tokens: one H100 ESM-2 batch's tokens
TILES = (
    (64, 64, 4, 2),
    (128, 64, 8, 2),
    (64, 32, 4, 2),
    (128, 32, 4, 3),
    (64, 64, 4, 3),
    (128, 128, 8, 2),
    (256, 64, 8, 2),  # all 168 queries of a head in one program: K and V read once
)


def _ms(fn: Any, repeats: int = 20) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return round(start.elapsed_time(end) / repeats, 3)


def _inputs(batch: int, tokens: int, padded: bool, bf16: bool = False) -> tuple[Any, ...]:
    import torch

    from virnucpro_tui.models.esm.encoder import RotaryEmbedding

    dtype = torch.bfloat16 if bf16 else torch.float16
    qkv = torch.randn(batch, tokens, 3 * HEADS * HEAD_DIM, device="cuda")
    qkv[..., : HEADS * HEAD_DIM] *= HEAD_DIM**-0.5
    qkv = qkv.to(dtype)
    cos, sin = RotaryEmbedding(HEAD_DIM).to("cuda").tables(tokens, dtype)
    keep = None
    if padded:
        lengths = torch.randint(tokens // 2, tokens + 1, (batch,), device="cuda")
        lengths[0] = tokens
        keep = torch.arange(tokens, device="cuda")[None, :] < lengths[:, None]
    return qkv, cos, sin, keep


def rotary_kernel_check(probe: Any) -> None:
    import torch
    import triton

    from virnucpro_tui.models import rotary_attention as ra

    sys_path_scripts()
    from rotary_attention_interpreter_check import reference

    compiled = torch.compile(reference, dynamic=False)
    out: dict[str, Any] = {}
    for batch, tokens in SHAPES:
        for padded in (False, True):
            key = f"{batch}x{tokens}{'_padded' if padded else ''}"
            _compare(out, key, _inputs(batch, tokens, padded), reference, compiled)
            probe.log(f"rotary kernel {key}")
    # bf16 (fp8's activations; the interpreter cannot check it)
    _compare(out, "241x168_padded_bf16", _inputs(241, 168, True, True), reference, compiled)
    qkv, cos, sin, keep = _inputs(241, 168, True)
    got = torch.empty(241, 168, HEADS * HEAD_DIM, device="cuda", dtype=torch.float16)
    for bm, bn, warps, stages in TILES:
        options = {**ra.launch_options(HEAD_DIM), "BLOCK_M": bm, "BLOCK_N": bn}
        options.update(num_warps=warps, num_stages=stages)
        grid = (triton.cdiv(168, bm), 241 * HEADS)

        def call(options: dict[str, Any] = options, grid: tuple[int, int] = grid) -> None:
            ra._rotary_attention_kernel[grid](
                qkv, cos, sin, keep, got, 168, HEADS, HAS_MASK=True, **options
            )

        out[f"tile_{bm}x{bn}_w{warps}_s{stages}_ms"] = _ms(call)
    probe.results["rotary_kernel"] = out
    torch.cuda.empty_cache()


def _compare(
    out: dict[str, Any], key: str, args: tuple[Any, ...], reference: Any, compiled: Any
) -> None:
    """Errors against fp32 (on 8 proteins) and times: the kernel and today's compiled path."""

    from virnucpro_tui.models import rotary_attention as ra

    qkv, cos, sin, keep = args
    few = None if keep is None else keep[:8]
    truth = reference(qkv[:8], cos, sin, few, HEADS)
    kernel = ra.rotary_attention(qkv, cos, sin, keep, HEADS)
    today = compiled(qkv, cos, sin, keep, HEADS, qkv.dtype)
    out[f"{key}_kernel_max_err"] = float((kernel[:8].float() - truth).abs().max())
    out[f"{key}_today_max_err"] = float((today[:8].float() - truth).abs().max())
    out[f"{key}_kernel_ms"] = _ms(lambda: ra.rotary_attention(qkv, cos, sin, keep, HEADS))
    out[f"{key}_today_ms"] = _ms(lambda: compiled(qkv, cos, sin, keep, HEADS, qkv.dtype))


def sys_path_scripts() -> None:
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
