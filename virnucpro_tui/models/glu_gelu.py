"""DNABERT-S's gated feed-forward input, ``gelu(x @ Wg.T) * (x @ Wu.T)``, in one Triton kernel.

Each layer's MLP multiplies by ``gated_layers`` (``[2·I, H]``: the gate's rows, then the
up-projection's), splits the ``[rows, 2·I]`` product, and multiplies ``gelu(gate)`` by ``up``.
Compiled, that is one cuBLAS product that writes both halves and one kernel that reads them back:
17 of DNABERT-S's 121 ms a batch on an H100 (docs/benchmarks.md#levers-measured-2026-12-07).
Here each program computes the same tile of the gate and of the up-projection from one read of
``x`` and writes only ``gelu(gate)·up``. Both halves are rounded to the input's dtype before the
GELU, as the reference's product is.

Imported only on a GPU with ``EngineSettings.dnabert_glu_kernel`` (off until measured).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton  # type: ignore[import-not-found,unused-ignore]
import triton.language as tl  # type: ignore[import-not-found,unused-ignore]
from torch.library import triton_op, wrap_triton


class TileConfig(NamedTuple):
    block_m: int = 128
    block_n: int = 128
    block_k: int = 64
    group_m: int = 8
    num_warps: int = 8
    num_stages: int = 3


CONFIG = TileConfig()


@triton.jit  # type: ignore[misc,unused-ignore]
def _glu_gemm_kernel(  # type: ignore[no-untyped-def,unused-ignore]
    x_ptr,
    w_ptr,
    out_ptr,
    M,
    N,
    K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    # grouped tile order: GROUP_M row tiles share the weight tiles in L2
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    size_m = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % size_m
    pid_n = (pid % per_group) // size_m

    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + rows[:, None] * K + ks[None, :]
    gate_ptrs = w_ptr + cols[None, :].to(tl.int64) * K + ks[:, None]  # W's rows as columns
    up_ptrs = gate_ptrs + N * K
    row_ok = rows[:, None] < M
    gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, K // BLOCK_K):  # K is a multiple of BLOCK_K (checked by the caller)
        a = tl.load(x_ptrs, mask=row_ok, other=0.0)
        gate = tl.dot(a, tl.load(gate_ptrs), gate)
        up = tl.dot(a, tl.load(up_ptrs), up)
        x_ptrs += BLOCK_K
        gate_ptrs += BLOCK_K
        up_ptrs += BLOCK_K
    dtype = out_ptr.dtype.element_ty
    g = gate.to(dtype).to(tl.float32)
    u = up.to(dtype).to(tl.float32)
    h = 0.5 * g * (1.0 + tl.math.erf(g * 0.7071067811865476)) * u
    out_ptrs = out_ptr + rows[:, None] * N + cols[None, :]
    tl.store(out_ptrs, h.to(dtype), mask=row_ok)


def fits(weight: torch.Tensor, config: TileConfig = CONFIG) -> bool:
    """Whether a ``[2·I, H]`` gated weight fits the tile (DNABERT-S's 6144 x 768 does; a
    model of other sizes keeps the compiled path)."""
    n, k = weight.shape[0] // 2, weight.shape[1]
    return weight.shape[0] % 2 == 0 and k % config.block_k == 0 and n % config.block_n == 0


def launch(x: torch.Tensor, weight: torch.Tensor, config: TileConfig = CONFIG) -> torch.Tensor:
    """``gelu(x @ W[:I].T) * (x @ W[I:].T)`` for 2-D ``x`` ``[rows, H]`` and ``W`` ``[2·I, H]``."""
    if not fits(weight, config):
        raise ValueError(f"GLU kernel: weight {tuple(weight.shape)} does not fit the tile {config}")
    rows, k = x.shape
    n = weight.shape[0] // 2
    out = torch.empty((rows, n), dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(rows, config.block_m) * (n // config.block_n),)
    wrap_triton(_glu_gemm_kernel)[grid](x, weight, out, rows, n, **launch_options(k, config))
    return out


def launch_options(k: int, config: TileConfig = CONFIG) -> dict[str, int]:
    """The kernel's compile-time arguments, warps and stages for an input ``k`` wide (also what
    the tests compile it with for Hopper, without a GPU)."""
    return {
        "K": k,
        "BLOCK_M": config.block_m,
        "BLOCK_N": config.block_n,
        "BLOCK_K": config.block_k,
        "GROUP_M": config.group_m,
        "num_warps": config.num_warps,
        "num_stages": config.num_stages,
    }


@triton_op("virnucpro::glu_gelu", mutates_args=())
def glu_gelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The fused gated product of ``x`` ``[..., H]``: ``[..., I]``."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = launch(flat, weight.contiguous())
    return out.view(*x.shape[:-1], out.shape[-1])


def glu_gelu_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The reference's arithmetic: one product, split, ``gelu(gate) * up``."""
    gate, up = torch.nn.functional.linear(x, weight).split(weight.shape[0] // 2, dim=-1)
    return torch.nn.functional.gelu(gate) * up
