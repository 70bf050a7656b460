"""GPU probe (issue 21): a warm start with kernels loaded from an AOTInductor package (no Dynamo,
no Inductor at start) against today's warm ``torch.compile`` cache.

    python3 scripts/gpu_aoti_probe.py OUT_DIR [DEADLINE_S] [--tiny-cpu | --tiny-gpu]

One encoder layer of each model is exported with its weights as inputs (so the one package
serves all 36 ESM-2 layers and all 12 DNABERT-S layers, as regional compilation does today),
dynamic in batch and length, and compiled with ``aoti_compile_and_package``. Then, each in a
fresh process: the engine's warm start (compile cache warmed by a cold start before it) and a
start that loads the two packages instead of compiling; each reads both models, runs a first
batch of 2,048 proteins and 2,048 frames, and reports the seconds from the interpreter's start.
The packaged path's rates and its pooled embeddings' cosine to the compiled path are recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from probe_common import Probe, fresh_python

PROBE = Probe("aoti", default_deadline_s=540)
ROOT = Path(__file__).resolve().parent.parent
TINY_GPU = "--tiny-gpu" in sys.argv  # the tiny shapes on the GPU: does the packaged path run?
TINY = "--tiny-cpu" in sys.argv or TINY_GPU

# Shared by the children: functional layers (weights as inputs) and the packaged forward paths.
COMMON = r"""
import sys, time, json
T0 = time.time()
import torch
from pathlib import Path
from torch import nn
import torch.nn.functional as F
from virnucpro_tui.models.esm import apply_rotary

def esm_params(layer):
    a = layer.attn
    return [layer.attn_norm.weight, layer.attn_norm.bias, a.qkv.weight, a.qkv.bias,
            a.out_proj.weight, a.out_proj.bias, layer.ffn_norm.weight, layer.ffn_norm.bias,
            layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias]

class EsmLayerFn(nn.Module):
    def __init__(self, heads, eps, gelu_tanh):
        super().__init__()
        self.heads, self.eps, self.gelu_tanh = heads, eps, gelu_tanh
    def forward(self, x, pending, cos, sin, n1w, n1b, qw, qb, ow, ob, n2w, n2b, f1w, f1b, f2w, f2b):
        b, t, d = x.shape
        x = x + pending
        h = F.layer_norm(x, (d,), n1w, n1b, self.eps)
        q, k, v = F.linear(h, qw, qb).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        x = x + F.linear(a.transpose(1, 2).reshape(b, t, d), ow, ob)
        h = F.layer_norm(x, (d,), n2w, n2b, self.eps)
        if self.gelu_tanh:  # cuBLASLt's GELU epilogue, as the engine runs it
            flat = torch._addmm_activation(f1b, h.reshape(b * t, d), f1w.t(), use_gelu=True)
            h = flat.view(b, t, -1)
        else:
            h = F.gelu(F.linear(h, f1w, f1b))
        return x, F.linear(h, f2w, f2b)

def dna_params(layer):
    s, o, m = layer.attention.self, layer.attention.output, layer.mlp
    return [s.Wqkv.weight, s.Wqkv.bias, o.dense.weight, o.dense.bias, o.LayerNorm.weight,
            o.LayerNorm.bias, m.gated_layers.weight, m.wo.weight, m.wo.bias,
            m.layernorm.weight, m.layernorm.bias]

class DnaLayerFn(nn.Module):
    def __init__(self, heads, eps, inter):
        super().__init__()
        self.heads, self.eps, self.inter = heads, eps, inter
    def forward(self, x, slopes, lengths, qw, qb, dw, db, n1w, n1b, gw, wow, wob, n2w, n2b):
        from torch.nn.attention.flex_attention import flex_attention
        b, t, h = x.shape
        q, k, v = F.linear(x, qw, qb).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        def score_mod(score, bb, hh, qi, kv):
            biased = score - slopes[hh] * (qi - kv).abs()
            return torch.where(kv < lengths[bb], biased, float("-inf"))
        a = flex_attention(q, k, v, score_mod=score_mod).transpose(1, 2).reshape(b, t, h)
        x = F.layer_norm(F.linear(a, dw, db) + x, (h,), n1w, n1b, self.eps)
        gate, up = F.linear(x, gw).split(self.inter, dim=-1)
        return F.layer_norm(F.linear(F.gelu(gate) * up, wow, wob) + x, (h,), n2w, n2b, self.eps)

def dtypes(dev):
    if dev.type == "cpu":
        return torch.float32, torch.float32
    return torch.float16, torch.bfloat16  # the engine's auto precision on a GPU

def load_fast(paths, dev):
    dtype, dna_dtype = dtypes(dev)
    from virnucpro_tui.models.dnabert import load_dnabert
    from virnucpro_tui.models.esm import load_esm
    from virnucpro_tui.models.fast import FastDnabert, FastEsm
    esm = load_esm(paths[0], dtype).to(dev, dtype)
    esm.encoder = FastEsm(esm.encoder, gelu_epilogue=dev.type == "cuda")
    dna = load_dnabert(paths[1]).to(dev, dna_dtype)
    dna.model = FastDnabert(dna.model, flex=True)
    return esm, dna

def esm_fn(esm):
    layer = esm.encoder.layers[0]
    return EsmLayerFn(layer.attn.heads, layer.attn_norm.eps, esm.encoder.layers[0].gelu_epilogue)

def dna_fn(dna):
    layer = dna.model.inner.encoder.layer[0]
    return DnaLayerFn(layer.heads, layer.attention.output.LayerNorm.eps, layer.mlp.intermediate_size)

def use_packaged(esm, dna, esm_run, dna_run):
    enc = esm.encoder
    params = [esm_params(l) for l in enc.layers]
    def stack(x, cos, sin, mask):
        pending = torch.zeros_like(x)
        for p in params:
            x, pending = esm_run(x, pending, cos, sin, *p)
        return enc.final_norm(x + pending)
    enc._stack = stack
    fast = dna.model
    dparams = [dna_params(l) for l in fast.inner.encoder.layer]
    class Packaged(nn.Module):
        def __init__(self, p):
            super().__init__(); self.p = p
        def forward(self, x, slopes, lengths):
            return dna_run(x, slopes, lengths.to(torch.int64), *self.p)
    fast.layers = nn.ModuleList(Packaged(p) for p in dparams)

def batches(esm, dna, n):
    from virnucpro_tui.measure.bench_child import random_frames_dna, random_proteins
    p = esm.tokenize(random_proteins(n, 166))
    d = dna.tokenize(random_frames_dna(n))
    return p, d
"""

BUILD = (
    COMMON
    + r"""
from torch.export import Dim
paths, out_dir, tiny = sys.argv[1].split(","), Path(sys.argv[2]), sys.argv[3] != "0"
dev = torch.device("cpu" if sys.argv[3] == "1" else "cuda")
esm, dna = load_fast(paths, dev)
dtype, dna_dtype = dtypes(dev)
res = {}
b, t = Dim("b", min=2, max=8192), Dim("t", min=8, max=1026)
x = torch.randn(64, 168, esm.embed_dim, device=dev, dtype=dtype)
cos, sin = esm.encoder.tables(168, dtype)
args = (x, torch.zeros_like(x), cos, sin, *esm_params(esm.encoder.layers[0]))
dyn = ({0: b, 1: t}, {0: b, 1: t}, {0: t}, {0: t}) + (None,) * 12
start = time.time()
with torch.no_grad():
    ep = torch.export.export(esm_fn(esm), args, dynamic_shapes=dyn, strict=False)
res["esm_export_s"] = round(time.time() - start, 2); start = time.time()
torch._inductor.aoti_compile_and_package(ep, package_path=str(out_dir / "esm_layer.pt2"))
res["esm_aoti_compile_s"] = round(time.time() - start, 2)
layer = dna.model.inner.encoder.layer[0]
xd = torch.randn(64, 112, layer.attention.output.dense.weight.shape[0], device=dev, dtype=dna_dtype)
lengths = torch.full((64,), 100, device=dev, dtype=torch.int64)
dargs = (xd, dna.model.slopes, lengths, *dna_params(layer))
ddyn = ({0: b, 1: t}, None, {0: b}) + (None,) * 11
start = time.time()
with torch.no_grad():
    dep = torch.export.export(dna_fn(dna), dargs, dynamic_shapes=ddyn, strict=False)
res["dnabert_export_s"] = round(time.time() - start, 2); start = time.time()
torch._inductor.aoti_compile_and_package(dep, package_path=str(out_dir / "dnabert_layer.pt2"))
res["dnabert_aoti_compile_s"] = round(time.time() - start, 2)
res["total_s"] = round(time.time() - T0, 2)
print(json.dumps(res))
"""
)

# A start with the packages: read both models, load the packages, first batch of each.
PACKAGED = (
    COMMON
    + r"""
paths, pkg, tiny, n = sys.argv[1].split(","), Path(sys.argv[2]), sys.argv[3] != "0", int(sys.argv[4])
res = {"import_torch_s": round(time.time() - T0, 2)}
dev = torch.device("cpu" if sys.argv[3] == "1" else "cuda")
esm, dna = load_fast(paths, dev)
dtype, dna_dtype = dtypes(dev)
res["models_read_s"] = round(time.time() - T0, 2)
print("reached", res, file=sys.stderr, flush=True)
esm_run = torch._inductor.aoti_load_package(str(pkg / "esm_layer.pt2"))
dna_run = torch._inductor.aoti_load_package(str(pkg / "dnabert_layer.pt2"))
res["packages_loaded_s"] = round(time.time() - T0, 2)
print("reached", res, file=sys.stderr, flush=True)
use_packaged(esm, dna, esm_run, dna_run)
p, d = batches(esm, dna, n)
from virnucpro_tui.models.batching import embed_token_lists
from virnucpro_tui.models.device_memory import default_gpu_token_budget
def budget(which):  # the engine's batches (Engine._budget)
    if tiny:
        return 4096 if which == "esm" else 16384
    return default_gpu_token_budget(dev, which)
def run_esm(tok):
    return embed_token_lists(tok, lambda i, l, hp: esm.forward_pooled(i, l - 2, has_padding=hp),
                             esm.alphabet.padding_idx, dev, budget("esm"), 1024)
def run_dna(tok):
    def fwd(i, l, hp):
        return dna.forward_pooled(i, torch.arange(i.shape[1], device=i.device)[None, :] < l[:, None])
    return embed_token_lists(tok, fwd, dna.pad_id, dev, budget("dnabert"), 1024, align=1 if tiny else 8)
with torch.no_grad():
    pe = run_esm(p); pd = run_dna(d)
    if dev.type == "cuda": torch.cuda.synchronize()
res["first_batch_done_s"] = round(time.time() - T0, 2)
print("reached", res, file=sys.stderr, flush=True)
torch.save({"esm": pe.float().cpu(), "dna": pd.float().cpu()}, sys.argv[5])
def rate(fn, k):
    best = 1e9
    for _ in range(2):
        if dev.type == "cuda": torch.cuda.synchronize()
        t = time.perf_counter(); fn()
        if dev.type == "cuda": torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return round(k / best, 1)
with torch.no_grad():
    res["esm_proteins_per_s"] = rate(lambda: run_esm(p), len(p))
    res["dnabert_frames_per_s"] = rate(lambda: run_dna(d), len(d))
print(json.dumps(res))
"""
)

# Today's path: the engine (torch.compile with the keyed cache), the same first batches.
COMPILED = (
    COMMON
    + r"""
paths, cache, tiny, n = sys.argv[1].split(","), Path(sys.argv[2]), sys.argv[3] != "0", int(sys.argv[4])
res = {"import_torch_s": round(time.time() - T0, 2)}
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
dev = torch.device("cpu" if sys.argv[3] == "1" else "cuda")
settings = EngineSettings(force_model_length=True, compile_cache=cache)
e = Engine(ModelFiles(*[Path(x) for x in paths]), dev, settings)
e.load()
res["engine_loaded_s"] = round(time.time() - T0, 2)
p, d = batches(e.esm, e.dnabert, n)
pe = e.embed("esm", [], tokens=p); pd = e.embed("dnabert", [], tokens=d)
if dev.type == "cuda": torch.cuda.synchronize()
res["first_batch_done_s"] = round(time.time() - T0, 2)
torch.save({"esm": pe.float().cpu(), "dna": pd.float().cpu()}, sys.argv[5])
print(json.dumps(res))
"""
)


def child(code: str, args: list[str], timeout: float = 300) -> dict[str, Any]:
    value, wall = fresh_python(code, args, timeout, cwd=ROOT, stderr_tail=4000)
    result: dict[str, Any] = value if isinstance(value, dict) else {"stderr": value}
    result["wall_s"] = round(wall, 1)
    return result


def cosine(work: Path, a: str, b: str) -> dict[str, float]:
    import torch

    x, y = torch.load(work / a), torch.load(work / b)
    return {k: float(torch.nn.functional.cosine_similarity(x[k], y[k], dim=1).min()) for k in x}


def run(work: Path) -> None:
    import torch

    from virnucpro_tui.measure.bench_child import TINY as TINY_SHAPES
    from virnucpro_tui.measure.bench_child import Shapes, build_models

    dev = torch.device("cpu" if TINY and not TINY_GPU else "cuda")
    PROBE.results["device"] = "cpu" if dev.type == "cpu" else torch.cuda.get_device_name(0)
    PROBE.results["torch"] = torch.__version__
    paths = build_models(work / "models", TINY_SHAPES if TINY else Shapes(), dev)
    files = ",".join([paths["esm"], paths["dnabert"], paths["classifier"]])
    tiny, n = ("g" if TINY_GPU else "1", "64") if TINY else ("0", "2048")
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    PROBE.log("models built")
    pkg = work / "pkg"
    pkg.mkdir()
    r = PROBE.results

    PROBE.step("build", lambda: r.update(build=child(BUILD, [files, str(pkg), tiny])), 120)
    for label in ("compiled_cold", "compiled_warm_1", "compiled_warm_2"):
        args = [files, str(work / "cache"), tiny, n, str(work / f"{label}.pt")]
        PROBE.step(label, lambda a=args, k=label: r.update({k: child(COMPILED, a)}), 45)
    for label in ("packaged_1", "packaged_2"):
        args = [files, str(pkg), tiny, n, str(work / f"{label}.pt")]
        PROBE.step(label, lambda a=args, k=label: r.update({k: child(PACKAGED, a)}), 45)
    if (work / "packaged_1.pt").exists() and (work / "compiled_warm_1.pt").exists():
        r["cosine_min_packaged_vs_compiled"] = cosine(work, "packaged_1.pt", "compiled_warm_1.pt")
    print(json.dumps(r, indent=1, default=str)[-3000:])


if __name__ == "__main__":
    PROBE.main(run)
