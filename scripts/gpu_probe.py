"""GPU probe for engine tuning (issue #5): variants and a profiler breakdown in one call.

    python3 scripts/gpu_probe.py OUT_DIR
Writes OUT_DIR/probe.json and prints a table. Random weights of the real shapes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from virnucpro_tui.bench_child import (
    Shapes,
    build_models,
    random_frames_dna,
    random_proteins,
    timed,
)
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
R: dict = {}


def log(msg: str) -> None:
    print(f"[probe {time.strftime('%H:%M:%S')}] {msg}", flush=True)
    (OUT / "probe.json").write_text(json.dumps(R, indent=1, default=str))


def breakdown(fn, label: str) -> None:
    """Share of CUDA time by kernel family for one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        fn()
        torch.cuda.synchronize()
    families: dict[str, float] = {}
    top = []
    for ev in prof.key_averages():
        t = ev.device_time_total if hasattr(ev, "device_time_total") else ev.cuda_time_total
        if t <= 0 or ev.key.startswith(("cuda", "aten::", "Torch", "ProfilerStep")):
            continue
        k = ev.key.lower()
        fam = (
            "gemm"
            if any(x in k for x in ("gemm", "cutlass", "sm90", "nvjet", "matmul", "xmma"))
            else "attention"
            if any(x in k for x in ("flash", "fmha", "attention", "efficient"))
            else "triton/elementwise"
            if any(
                x in k
                for x in ("triton", "elementwise", "vectorized", "reduce", "layer_norm", "norm")
            )
            else "copy"
            if "copy" in k or "memcpy" in k
            else "other"
        )
        families[fam] = families.get(fam, 0.0) + t
        top.append((t, ev.key[:90]))
    total = sum(families.values())
    R[f"{label}_breakdown_ms"] = {k: round(v / 1000, 2) for k, v in families.items()}
    R[f"{label}_breakdown_share"] = {k: round(v / total, 3) for k, v in families.items()}
    R[f"{label}_top_kernels"] = [(round(t / 1000, 2), k) for t, k in sorted(top, reverse=True)[:12]]


def main() -> None:
    s = Shapes()
    device = torch.device("cuda")
    work = Path(tempfile.mkdtemp())
    files = build_models(work / "models", s, device)
    mf = ModelFiles(Path(files["esm"]), Path(files["dnabert"]), Path(files["classifier"]))
    log("models built")
    eng = Engine(mf, device, EngineSettings(force_model_length=True, esm_max_tokens=429 * 168))
    t, _ = timed(eng.load, device)
    R["load_compile_s"] = t
    R["loads"] = [(r.model, r.seconds) for r in eng.loads]
    log(f"engine loaded {t:.1f}s")
    proteins = random_proteins(3432, 166)
    dna = random_frames_dna(8192)
    eng.embed_proteins(proteins[:900])
    eng.embed_dna(dna[:3000])
    t, _ = timed(lambda: eng.embed_proteins(proteins), device)
    R["esm_dynamic_429"] = 3432 / t
    t, _ = timed(lambda: eng.embed_dna(dna), device)
    R["dna_frames_per_s"] = 8192 / t
    tok_s, toks = timed(lambda: eng.dnabert.tokenize(dna), device)
    R["dna_tokenize_s_8192"] = tok_s
    log(f"esm {R['esm_dynamic_429']:.1f}/s dna {R['dna_frames_per_s']:.0f}/s tokenize {tok_s:.2f}s")
    eng.settings.esm_max_tokens = 858 * 168
    eng.embed_proteins(proteins[:858])
    t, _ = timed(lambda: eng.embed_proteins(proteins), device)
    R["esm_dynamic_858"] = 3432 / t
    eng.settings.esm_max_tokens = 429 * 168
    eng.settings.dnabert_max_tokens = 262144
    t, _ = timed(lambda: eng.embed_dna(dna), device)
    R["dna_frames_per_s_262k"] = 8192 / t
    eng.settings.dnabert_max_tokens = None
    log(f"esm b858 {R['esm_dynamic_858']:.1f}/s dna262k {R['dna_frames_per_s_262k']:.0f}")
    batch = proteins[:429]
    breakdown(lambda: eng.embed_proteins(batch), "esm")
    breakdown(lambda: eng.embed_dna(dna[:1200]), "dna")
    log("profiled")
    # static-shape compile of ESM (one extra compile)
    os.environ["VIRNUCPRO_TUI_COMPILE_DYNAMIC"] = "0"
    from virnucpro_tui.models.fast import compile_module

    enc = eng.esm.encoder
    enc.__dict__.pop("_stack", None)
    compile_module(enc, "_stack")
    t0 = time.time()
    eng.embed_proteins(proteins[:429])
    R["static_compile_s"] = time.time() - t0
    t, _ = timed(lambda: eng.embed_proteins(proteins[:3003]), device)  # 7 full batches of 429
    R["esm_static_429"] = 3003 / t
    log(f"static {R['esm_static_429']:.1f}/s (compile {R['static_compile_s']:.0f}s)")
    print(json.dumps(R, indent=1, default=str))


main()
