"""The Triton kernels of the GPU engine (models/fp8_gelu.py, models/glu_gelu.py,
models/rotary_attention.py), checked without
a GPU: compiled by Triton's real compiler for Hopper (and Ada for FP8) down to a cubin, with the
arguments the engine launches them with, and run by Triton's interpreter against the reference
arithmetic (scripts/*_kernel_interpreter_check.py, in a fresh process: the interpreter is chosen
when a kernel is defined).

A kernel that reads a module-level constant compiles under the interpreter but not for a GPU;
only the compile test catches that (it cost a GPU session once).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("Triton's wheels are for Linux x86-64", allow_module_level=True)

import triton  # noqa: E402  (a test dependency on Linux x86-64: pyproject's test extra)
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from virnucpro_tui.models import fp8_gelu, glu_gelu, rotary_attention  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOPPER, ADA = GPUTarget("cuda", 90, 32), GPUTarget("cuda", 89, 32)
_A_MODULE_FLOAT = 448.0  # what a kernel must not read


def compile_kernel(fn: Any, signature: dict[str, str], options: dict[str, Any], target: Any) -> Any:
    """Compile ``fn`` with the launcher's options: constexprs go into the source, warps and
    stages into the compiler's options."""
    launch = {k: v for k, v in options.items() if k in ("num_warps", "num_stages")}
    constexprs = {k: v for k, v in options.items() if k not in launch}
    signature = {**signature, **dict.fromkeys(constexprs, "constexpr")}
    return triton.compile(ASTSource(fn, signature, constexprs), target=target, options=launch)


@pytest.mark.parametrize("target", [HOPPER, ADA], ids=["sm90", "sm89"])
@pytest.mark.parametrize("cols", [10240, 256], ids=["esm2-3b", "demo"])
def test_the_fp8_gelu_kernel_compiles_for_the_gpus_fp8_runs_on(target: Any, cols: int) -> None:
    signature = {"x_ptr": "*bf16", "q_ptr": "*fp8e4nv", "scale_ptr": "*fp32", "n_cols": "i32"}
    options = fp8_gelu.launch_options(cols)
    assert options["BLOCK"] >= cols
    kernel = compile_kernel(fp8_gelu._gelu_quantize_kernel, signature, options, target)
    assert len(kernel.asm["cubin"]) > 1000
    assert kernel.metadata.num_warps == options["num_warps"]


def test_the_glu_kernel_compiles_for_hopper_at_dnabert_s_shapes() -> None:
    signature = {"x_ptr": "*bf16", "w_ptr": "*bf16", "out_ptr": "*bf16", "M": "i32", "N": "i32"}
    options = glu_gelu.launch_options(768)
    kernel = compile_kernel(glu_gelu._glu_gemm_kernel, signature, options, HOPPER)
    assert len(kernel.asm["cubin"]) > 1000
    assert "wgmma" in kernel.asm["ptx"] or "mma" in kernel.asm["ptx"]  # tensor cores, not FMA
    assert (kernel.metadata.num_warps, kernel.metadata.num_stages) == (8, 3)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("has_mask", [True, False], ids=["padded", "unpadded"])
def test_the_rotary_attention_kernel_compiles_for_hopper_at_esm2_shapes(
    dtype: str, has_mask: bool
) -> None:
    signature = {
        "qkv_ptr": f"*{dtype}",
        "cos_ptr": f"*{dtype}",
        "sin_ptr": f"*{dtype}",
        "keep_ptr": "*i1",
        "out_ptr": f"*{dtype}",
        "T": "i32",
        "H": "i32",
    }
    options = {"HAS_MASK": has_mask, **rotary_attention.launch_options(64)}
    kernel = compile_kernel(rotary_attention._rotary_attention_kernel, signature, options, HOPPER)
    assert len(kernel.asm["cubin"]) > 1000
    assert "mma" in kernel.asm["ptx"]  # both products on tensor cores
    assert kernel.metadata.num_warps == 4


@pytest.mark.slow
def test_the_rotary_attention_kernel_matches_fp32_under_the_interpreter() -> None:
    """At least as close to fp32 as the fp16 path it replaces (split, rotary, SDPA), padded
    and not; the check fails by a factor of 1,000 with the rotation's sign or the padding
    mask broken (tried by hand)."""
    out = run_interpreter_check("rotary_attention_interpreter_check.py")
    ratios = re.findall(
        r"max \|kernel - fp32\| ([0-9.e+-]+), \|torch.float16 path - fp32\| ([0-9.e+-]+)", out
    )
    assert len(ratios) == 4
    for kernel_error, path_error in ratios:
        assert float(kernel_error) < 1.5 * float(path_error) and float(path_error) < 1e-3


def test_a_kernel_reading_a_module_constant_fails_to_compile() -> None:
    """The check above can fail: the mistake it exists for, made on purpose."""
    source = ROOT / "virnucpro_tui" / "models" / "fp8_gelu.py"
    assert "LIMIT: tl.constexpr" in source.read_text()

    @triton.jit  # type: ignore[misc,unused-ignore]
    def reads_a_global(x_ptr, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def,unused-ignore]
        cols = tl.arange(0, BLOCK)
        tl.store(x_ptr + cols, tl.load(x_ptr + cols) * _A_MODULE_FLOAT)

    with pytest.raises(triton.CompilationError, match="global variable"):
        compile_kernel(reads_a_global, {"x_ptr": "*fp32"}, {"BLOCK": 128}, HOPPER)


def run_interpreter_check(script: str) -> str:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_fp8_gelu_kernel_matches_the_reference_under_the_interpreter() -> None:
    out = run_interpreter_check("fp8_kernel_interpreter_check.py")
    assert "scales equal: True" in out
    equal, total = map(int, re.search(r"bytes equal: (\d+) of (\d+)", out).groups())  # type: ignore[union-attr]
    assert total == 37 * 1000 and equal >= total - 5


@pytest.mark.slow
def test_the_glu_kernel_matches_fp32_under_the_interpreter() -> None:
    out = run_interpreter_check("glu_kernel_interpreter_check.py")
    errors = [float(e) for e in re.findall(r"max \|kernel - fp32\| ([0-9.e+-]+)", out)]
    assert len(errors) == 2 and max(errors) < 2e-2
    cosine = float(re.search(r"cosine ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert cosine > 0.99999


def test_the_rotary_attention_op_traces_one_graph_for_every_length() -> None:
    """Dynamo traces the op with fake tensors (no GPU, nothing runs): proteins of 20 to 200
    tokens, padded, share one graph. A launch choice made on the length (a 32-wide key block
    for short batches, tried by hand) adds a guard and a second graph, which on a GPU is a
    compilation in the middle of a run."""
    import torch

    from virnucpro_tui.models.esm.encoder import RotaryEmbedding

    graphs: list[Any] = []

    def backend(graph: Any, inputs: Any) -> Any:
        graphs.append(graph)

        def run(*args: Any) -> tuple[Any]:  # sizes come first, then the tensors
            qkv = next(a for a in args if isinstance(a, torch.Tensor) and a.dim() == 3)
            return (torch.zeros(*qkv.shape[:2], 128, dtype=qkv.dtype),)

        return run

    def attend(qkv: Any, cos: Any, sin: Any, keep: Any) -> Any:
        return torch.ops.virnucpro.rotary_attention(qkv, cos, sin, keep, 2)

    compiled = torch.compile(attend, backend=backend, dynamic=True, fullgraph=True)
    for tokens in (70, 20, 200, 31):
        qkv = torch.randn(3, tokens, 3 * 2 * 64).half()
        cos, sin = RotaryEmbedding(64).tables(tokens, torch.float16)
        keep = torch.arange(tokens)[None, :] < torch.tensor([tokens, tokens - 3, 9])[:, None]
        with torch.no_grad():
            compiled(qkv, cos, sin, keep)
    assert len(graphs) == 1
    placeholders = [n for n in graphs[0].graph.nodes if n.op == "placeholder"]
    assert any("qkv" in n.name for n in placeholders)
