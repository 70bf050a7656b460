"""GPU probe (issue 21): layouts of fp8's GELU + row-wise quantisation kernel, timed on one ESM-2
batch's fc1 output (40,488 rows x 10,240, bf16) against the product's kernel, Inductor's and a
plain cast (the bandwidth ceiling of reading bf16 and writing float8).

    python3 scripts/gpu_fp8_gelu_variants.py OUT_DIR

Each variant's bytes and scales are compared with ``gelu_quantize_reference``'s.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from virnucpro_tui.models.fp8 import FP8, FP8_MAX, MIN_SCALE_AMAX, gelu_quantize_reference  # noqa: E402
from virnucpro_tui.models.fp8_gelu import _gelu_quantize_kernel, gelu_quantize_rows  # noqa: E402


@triton.jit
def _chunked(
    x_ptr,
    q_ptr,
    s_ptr,
    n_cols: tl.constexpr,
    ROWS: tl.constexpr,
    CHUNK: tl.constexpr,
    LIMIT: tl.constexpr,
    MIN_AMAX: tl.constexpr,
):
    """ROWS rows a program, each read twice in CHUNK-wide pieces (the second read from L2)."""
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    base = rows[:, None] * n_cols
    cols = tl.arange(0, CHUNK)[None, :]
    amax = tl.zeros((ROWS, CHUNK), tl.float32)
    for start in range(0, n_cols, CHUNK):
        x = tl.load(x_ptr + base + start + cols, eviction_policy="evict_last").to(tl.float32)
        g = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
        amax = tl.maximum(amax, tl.abs(g))
    scale = tl.maximum(tl.max(amax, axis=1), MIN_AMAX) / LIMIT
    for start in range(0, n_cols, CHUNK):
        x = tl.load(x_ptr + base + start + cols, eviction_policy="evict_first").to(tl.float32)
        g = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
        q = tl.clamp(g / scale[:, None], -LIMIT, LIMIT)
        tl.store(q_ptr + base + start + cols, q.to(q_ptr.dtype.element_ty))
    tl.store(s_ptr + rows, scale)


@triton.jit
def _one_pass_reciprocal(
    x_ptr, q_ptr, s_ptr, n_cols, BLOCK: tl.constexpr, LIMIT: tl.constexpr, MIN_AMAX: tl.constexpr
):
    """The product's one-pass kernel, multiplying by the scale's reciprocal (no division)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
    g = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    amax = tl.maximum(tl.max(tl.abs(g), axis=0), MIN_AMAX)
    q = tl.clamp(g * (LIMIT / amax), -LIMIT, LIMIT)
    tl.store(q_ptr + row * n_cols + cols, q.to(q_ptr.dtype.element_ty), mask=inside)
    tl.store(s_ptr + row, amax / LIMIT)


def chunked(rows: int, chunk: int, warps: int) -> Callable[[torch.Tensor], Any]:
    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, cols = x.shape
        assert n % rows == 0 and cols % chunk == 0
        q = torch.empty((n, cols), dtype=FP8, device=x.device)
        s = torch.empty((n, 1), dtype=torch.float32, device=x.device)
        _chunked[(n // rows,)](
            x,
            q,
            s,
            cols,
            ROWS=rows,
            CHUNK=chunk,
            LIMIT=FP8_MAX,
            MIN_AMAX=MIN_SCALE_AMAX,
            num_warps=warps,
        )
        return q, s

    return run


def one_pass(warps: int, kernel: Any = _gelu_quantize_kernel) -> Callable[[torch.Tensor], Any]:
    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, cols = x.shape
        q = torch.empty((n, cols), dtype=FP8, device=x.device)
        s = torch.empty((n, 1), dtype=torch.float32, device=x.device)
        block = triton.next_power_of_2(cols)
        kernel[(n,)](
            x, q, s, cols, BLOCK=block, LIMIT=FP8_MAX, MIN_AMAX=MIN_SCALE_AMAX, num_warps=warps
        )
        return q, s

    return run


def time_ms(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, n: int = 10) -> float:
    fn(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn(x)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def main(out_dir: Path) -> None:
    x = torch.randn(40488, 10240, device="cuda", dtype=torch.bfloat16) * 2
    qr, sr = gelu_quantize_reference(x)
    variants: dict[str, Callable[[torch.Tensor], Any]] = {
        "product": gelu_quantize_rows,
        "inductor": torch.compile(gelu_quantize_reference),
        "cast_only_ceiling": lambda t: t.to(FP8),
        **{f"one_pass_w{w}": one_pass(w) for w in (4, 8)},
        **{f"one_pass_reciprocal_w{w}": one_pass(w, _one_pass_reciprocal) for w in (4, 8)},
    }
    for rows, chunk, warps in ((1, 2048, 4), (2, 1024, 8)):
        variants[f"chunked_r{rows}_c{chunk}_w{warps}"] = chunked(rows, chunk, warps)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "rows": list(x.shape)}
    for name, fn in variants.items():
        try:
            ms = time_ms(fn, x)
            entry: dict[str, Any] = {
                "ms": round(ms, 3),
                "gb_per_s": round(x.numel() * 3 / ms / 1e6),
            }
            if not name.startswith("cast"):
                q, s = fn(x)
                entry["bytes_equal"] = float(
                    (q.view(torch.uint8) == qr.view(torch.uint8)).float().mean()
                )
                entry["scales_equal"] = bool(torch.equal(s, sr))
                entry["max_code_step"] = float((q.float() - qr.float()).abs().max())
        except Exception as exc:  # noqa: BLE001 - a variant that fails is a result
            entry = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        results[name] = entry
        print(name, entry, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fp8-gelu-variants.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
