"""GPU probe (issue 21): speed levers for ESM-2 and DNABERT-S, each variant in a fresh process
with its own empty compile cache, so no Inductor setting leaks from one variant into the next.

    python3 scripts/gpu_speed_probe.py OUT_DIR [DEADLINE_S] [VARIANT,VARIANT,...]

``kernel``, ``glu`` and ``rotary_kernel`` time one kernel alone first (no model files);
``rotary``/``fp8_rotary`` run ESM-2 with the fused rotary attention kernel.

Per variant: ``Engine.load`` seconds (cold compile), ESM-2 proteins/s (1,716 proteins of 166
residues) and DNABERT-S frames/s (8,192 frames) through ``Engine.embed`` (one warm pass, then
the best of two), the cosine of ESM-2's pooled embeddings against the baseline variant's, and
for some variants a kernel-category profile of one batch (scripts/gpu_levers_probe.py).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from probe_common import Probe, fresh_python

PROBE = Probe("speed", default_deadline_s=540)
ROOT = Path(__file__).resolve().parent.parent

# name: (environment, settings, patches, what to measure)
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {"profile": True, "dnabert": True},
    "base_esm": {},  # the fp16 reference for the cosine, ESM-2 alone
    "eager": {"settings": {"compile": False}, "dnabert": True},
    "cdt": {
        "env": {"TORCHINDUCTOR_COORDINATE_DESCENT_TUNING": "1"},
        "dnabert": True,
        "profile": True,
    },
    "flex128": {"patch": "esm_flex"},
    "flex64": {"patch": "esm_flex64"},
    "tokens2x": {"tokens_factor": 2, "dnabert": True},
    "fp8": {"settings": {"precision": "fp8"}, "profile": True},
    "fp8_kernel": {"settings": {"precision": "fp8", "fp8_gelu_kernel": True}, "profile": True},
    "base_dna": {"esm": False, "dnabert": True},  # the reference for DNABERT-S's cosine
    "dna_glu": {"esm": False, "dnabert": True, "settings": {"dnabert_glu_kernel": True}},
    "fp8_cdt": {
        "settings": {"precision": "fp8"},
        "env": {"TORCHINDUCTOR_COORDINATE_DESCENT_TUNING": "1"},
    },
    "fp8_tensor": {"settings": {"precision": "fp8"}, "patch": "fp8_per_tensor", "profile": True},
    "autotune": {"env": {"TORCHINDUCTOR_MAX_AUTOTUNE_GEMM": "1"}, "dnabert": True, "profile": True},
    "static": {"env": {"VIRNUCPRO_TUI_COMPILE_DYNAMIC": "0"}, "dnabert": True},
    "fp8_kernel_cdt": {
        "settings": {"precision": "fp8", "fp8_gelu_kernel": True},
        "env": {"TORCHINDUCTOR_COORDINATE_DESCENT_TUNING": "1"},
        "profile": True,
    },
    "dna_autotune": {  # Triton GEMM templates: the GLU's gelu*mul may fuse into wo's prologue
        "esm": False,
        "dnabert": True,
        "env": {"TORCHINDUCTOR_MAX_AUTOTUNE_GEMM": "1"},
    },
    "fp8_autotune": {
        "settings": {"precision": "fp8"},
        "env": {"TORCHINDUCTOR_MAX_AUTOTUNE_GEMM": "1"},
    },
    # rotary and attention in one Triton kernel (models/rotary_attention.py)
    "rotary": {"settings": {"esm_attention": "rotary-fused"}, "profile": True},
    "fp8_rotary": {
        "settings": {"precision": "fp8", "esm_attention": "rotary-fused"},
        "profile": True,
    },
    # ESM-2's LayerNorms (2,560 wide) as persistent reductions, one read of each row: Inductor
    # makes them only up to 1,024 wide unless its multi-kernel mode is on (2: always persistent;
    # 1: both kinds, the faster picked at the first call)
    "ln_persistent": {"env": {"TORCHINDUCTOR_MULTI_KERNEL": "2"}, "profile": True},
    "ln_multi_kernel": {"env": {"TORCHINDUCTOR_MULTI_KERNEL": "1"}},
    "rotary_ln_persistent": {
        "settings": {"esm_attention": "rotary-fused"},
        "env": {"TORCHINDUCTOR_MULTI_KERNEL": "2"},
        "profile": True,
    },
    # fp8 with its layers compiled ahead of time (off by default for fp8: never measured)
    "fp8_precompile": {"settings": {"precision": "fp8", "precompile": True}},
    "fp8_precompile_warm": {
        "settings": {"precision": "fp8", "precompile": True},
        "cache": "fp8_precompile",
    },
    # --precision fp8 quantising DNABERT-S's linear maps too (today: ESM-2's only)
    "fp8_dnabert": {
        "settings": {"precision": "fp8"},
        "patch": "fp8_dnabert",
        "esm": False,
        "dnabert": True,
    },
    # DNABERT-S batches padded to 8 columns under FlexAttention too (the default before)
    "dna_align8": {"esm": False, "dnabert": True, "patch": "dna_align8"},
    "rotary_cdt": {
        "settings": {"esm_attention": "rotary-fused"},
        "env": {"TORCHINDUCTOR_COORDINATE_DESCENT_TUNING": "1"},
    },
}
DEFAULT_ORDER = "base,eager,cdt,flex128,flex64,tokens2x,fp8,fp8_cdt,fp8_tensor"

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[5])
t0 = time.time()
import torch
from pathlib import Path
import torch.nn.functional as F
from virnucpro_tui.measure.bench_child import random_frames_dna, random_proteins
from virnucpro_tui.models.device_memory import default_gpu_token_budget
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from probe_common import profile, rate
v = json.loads(sys.argv[1])
files = ModelFiles(*[Path(p) for p in sys.argv[2].split(",")])
out = {"variant": v}
patch = v.get("patch", "")
if patch.startswith("esm_flex"):
    from torch.nn.attention.flex_attention import flex_attention
    from virnucpro_tui.models import fast
    from virnucpro_tui.models.esm import apply_rotary
    opts = {"BLOCK_M": 64, "BLOCK_N": 64} if patch == "esm_flex64" else None
    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        q, k, vv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if mask is None:
            o = flex_attention(q, k, vv, scale=1.0, kernel_options=opts)
        else:
            o = F.scaled_dot_product_attention(q, k, vv, attn_mask=mask, scale=1.0)
        return self.out_proj(o.transpose(1, 2).reshape(b, t, d))
    fast._FusedAttention.forward = forward
if patch == "fp8_dnabert":
    from virnucpro_tui.models import fast
    from virnucpro_tui.models.fp8 import quantize_linears
    compile_layers = fast.compile_layers
    def quantized_then_compiled(layers, ahead=None):
        if isinstance(layers[0], fast._FlexLayer):
            quantize_linears(layers)
        compile_layers(layers, ahead)
    fast.compile_layers = quantized_then_compiled
if patch == "dna_align8":
    Engine._dnabert_align = lambda self: 8
if patch == "fp8_per_tensor":
    from virnucpro_tui.models import fp8 as fp8mod
    from torch import nn
    def quantize_linears(module):
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerTensor, quantize_
        cfg = Float8DynamicActivationFloat8WeightConfig(granularity=PerTensor(), set_inductor_config=False)
        quantize_(module, cfg, filter_fn=lambda m, _n: isinstance(m, nn.Linear))
    fp8mod.quantize_linears = quantize_linears
dev = torch.device("cuda")
extra = dict(v.get("settings", {}))
factor = v.get("tokens_factor")
if factor:
    extra["esm_max_tokens"] = factor * default_gpu_token_budget(dev, "esm")
    extra["dnabert_max_tokens"] = min(factor * default_gpu_token_budget(dev, "dnabert"), 262144)
settings = EngineSettings(force_model_length=True, compile_cache=Path(sys.argv[3]), **extra)
said = []
e = Engine(files, dev, settings, report=said.append)
t = time.time(); e.load(); torch.cuda.synchronize()
out["load_s"] = round(time.time() - t, 2)
out["esm_budget"] = e._budget("esm")
out["esm_attention"] = getattr(getattr(e.esm.encoder.layers[0], "attn", None), "attention", "reference")
out["fallbacks"] = [r.message for r in said if type(r).__name__ == "CompileCacheFallback"]
pooled = {}
if v.get("esm", True):
    prot = random_proteins(1716, 166)
    p_tok = e.esm.tokenize(prot)
    pooled["esm"] = e.embed("esm", [], tokens=p_tok[:512]).float().cpu()
    out["esm_proteins_per_s"] = rate(len(prot), lambda: e.embed("esm", [], tokens=p_tok))
if v.get("dnabert"):
    dna = random_frames_dna(8192)
    d_tok = e.dnabert.tokenize(dna)
    pooled["dnabert"] = e.embed("dnabert", [], tokens=d_tok[:2048]).float().cpu()
    out["dnabert_frames_per_s"] = rate(len(dna), lambda: e.embed("dnabert", [], tokens=d_tok))
torch.save(pooled, sys.argv[4])
if v.get("profile") and v.get("esm", True):
    rows = e._budget("esm") // 168
    out["profile_esm"] = profile(lambda: e.embed("esm", [], tokens=p_tok[:rows]))
    out["profile_esm"]["proteins"] = rows
    if v.get("dnabert"):
        out["profile_dnabert"] = profile(lambda: e.embed("dnabert", [], tokens=d_tok[:2048]))
out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
out["total_s"] = round(time.time() - t0, 1)
print(json.dumps(out, default=str))
"""


def variant(name: str, files: str, work: Path) -> None:
    import torch

    spec = VARIANTS[name]
    pooled = work / f"pooled-{name}.pt"
    value, wall = fresh_python(
        CHILD,
        [
            json.dumps(spec),
            files,
            str(work / f"cache-{spec.get('cache', name)}"),
            str(pooled),
            str(ROOT / "scripts"),
        ],
        timeout=300,
        env_extra=spec.get("env", {}),
        cwd=ROOT,
        stderr_tail=3000,
    )
    result: dict[str, Any] = value if isinstance(value, dict) else {"stderr": value}
    result["wall_s"] = round(wall, 1)
    if not name.startswith("base") and pooled.exists():
        mine = torch.load(pooled)
        for base in sorted(work.glob("pooled-base*.pt")):
            for model, ref in torch.load(base).items():
                if model in mine and f"{model}_cosine_min_vs_base" not in result:
                    cos = torch.nn.functional.cosine_similarity(ref, mine[model], dim=1)
                    result[f"{model}_cosine_min_vs_base"] = float(cos.min())
    PROBE.results[name] = result


def fp8_kernel_check() -> None:
    """The one-pass GELU + FP8 quantisation kernel against the same arithmetic in torch
    operations (eager and compiled): identical bytes, and the time of each on one batch's rows."""
    import torch

    from virnucpro_tui.models.fp8 import gelu_quantize_reference
    from virnucpro_tui.models.fp8_gelu import gelu_quantize_rows

    x = torch.randn(40488, 10240, device="cuda", dtype=torch.bfloat16) * 2
    q, s = gelu_quantize_rows(x)
    qr, sr = gelu_quantize_reference(x)
    out: dict[str, Any] = {
        "bytes_equal_fraction": float((q.view(torch.uint8) == qr.view(torch.uint8)).float().mean()),
        "scale_max_rel_diff": float(((s - sr).abs() / sr).max()),
    }
    compiled = torch.compile(gelu_quantize_reference)
    for name, fn in (
        ("kernel", gelu_quantize_rows),
        ("inductor", compiled),
        ("eager", gelu_quantize_reference),
    ):
        fn(x)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            fn(x)
        end.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(end) / 10
        out[f"{name}_ms"] = round(ms, 3)
        out[f"{name}_gb_per_s"] = round(x.numel() * 3 / ms / 1e6, 1)  # read bf16, write fp8
    PROBE.results["fp8_gelu_kernel_check"] = out  # not "fp8_kernel": a variant
    del x, q, qr
    torch.cuda.empty_cache()


def glu_kernel_check() -> None:
    """DNABERT-S's fused gated product against cuBLAS + the compiled gelu·mul at one batch's
    rows (2,048 frames x 112 tokens): the error against fp32, and the time of each tile shape."""
    import torch

    from virnucpro_tui.models.glu_gelu import TileConfig, glu_gelu_reference, launch

    x = torch.randn(2048 * 112, 768, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(6144, 768, device="cuda", dtype=torch.bfloat16) * 0.036
    truth = glu_gelu_reference(x[:4096].float(), w.float())
    bf16 = glu_gelu_reference(x[:4096], w).float()
    out: dict[str, Any] = {"reference_bf16_max_abs_err": float((bf16 - truth).abs().max())}
    compiled = torch.compile(glu_gelu_reference)
    cands = {
        "reference_compiled": compiled,
        "cublas_product_alone": lambda a, b: torch.nn.functional.linear(a, b),
    }
    for bm, bn, bk, warps, stages in (
        (128, 128, 64, 8, 3),
        (128, 128, 64, 8, 4),
        (128, 64, 64, 4, 4),
        (128, 64, 64, 8, 3),
        (64, 128, 64, 4, 4),
        (128, 256, 64, 8, 3),
        (256, 64, 64, 8, 3),
        (128, 128, 32, 8, 4),
    ):
        cfg = TileConfig(bm, bn, bk, 8, warps, stages)
        cands[f"kernel_{bm}x{bn}x{bk}_w{warps}_s{stages}"] = lambda a, b, c=cfg: launch(a, b, c)
    for name, fn in cands.items():
        try:
            got = fn(x[:4096], w).float()
            if got.shape == truth.shape:
                out[f"{name}_max_abs_err"] = float((got - truth).abs().max())
            fn(x, w)
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                fn(x, w)
            end.record()
            torch.cuda.synchronize()
            ms = start.elapsed_time(end) / 10
            out[f"{name}_ms"] = round(ms, 3)
            out[f"{name}_tflops"] = round(2 * x.shape[0] * 768 * 6144 / ms / 1e9, 1)
        except Exception as exc:  # noqa: BLE001 - one shape may not compile; record it
            out[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
        PROBE.log(f"glu {name}")
    PROBE.results["glu_kernel"] = out
    del x
    torch.cuda.empty_cache()


def run(work: Path) -> None:
    import torch

    PROBE.results["device"] = torch.cuda.get_device_name(0)
    PROBE.results["torch"] = torch.__version__
    PROBE.results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    order = (sys.argv[3] if len(sys.argv) > 3 else DEFAULT_ORDER).split(",")
    if "kernel" in order:  # the kernels alone first: they need no model files
        order.remove("kernel")
        PROBE.step("fp8_kernel", fp8_kernel_check, 30)
    if "glu" in order:
        order.remove("glu")
        PROBE.step("glu_kernel", glu_kernel_check, 40)
    if "rotary_kernel" in order:
        order.remove("rotary_kernel")
        from gpu_rotary_kernel_check import rotary_kernel_check

        PROBE.step("rotary_kernel", lambda: rotary_kernel_check(PROBE), 90)
    if not order:
        return
    if not any(name.startswith("base") for name in order):
        order.insert(0, "base")
    files = build(work)
    for name in order:
        needs = 90 if "autotune" in name else 45
        PROBE.step(name, lambda n=name: variant(n, files, work), needs)


def build(work: Path) -> str:
    """The three models at the real shapes, random weights: their paths, comma-separated."""
    import torch

    from virnucpro_tui.measure.bench_child import Shapes, build_models

    t = time.time()
    paths = build_models(work / "models", Shapes(), torch.device("cuda"))
    torch.cuda.empty_cache()
    PROBE.results["build_models_s"] = round(time.time() - t, 1)
    PROBE.log("models built")
    return ",".join([paths["esm"], paths["dnabert"], paths["classifier"]])


if __name__ == "__main__":
    PROBE.main(run)
