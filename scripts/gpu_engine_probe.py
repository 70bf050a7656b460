"""GPU probe for the engine levers of issue 13, in one call: variants, fidelity and profiles.

    python3 scripts/gpu_engine_probe.py OUT_DIR [DEADLINE_S]

Random weights of the real shapes. Every variant is timed twice (median of the two after a
warm pass, CUDA-synchronised) and compared with the fp32 reference modules (TF32 off) on the
same proteins / frames. Writes OUT_DIR/probe.json after every step and prints a table last.
Steps run in order of importance and are skipped once DEADLINE_S (default 480) has passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from virnucpro_tui.bench_child import (
    TINY,
    Shapes,
    build_models,
    random_frames_dna,
    random_proteins,
    timed,
)
from virnucpro_tui.models.dnabert import load_dnabert
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.esm import load_esm
from virnucpro_tui.models.settings import EngineSettings, ModelFiles

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
OUT.mkdir(parents=True, exist_ok=True)
DEADLINE = time.time() + float(sys.argv[2] if len(sys.argv) > 2 else 480)
R: dict[str, Any] = {"torch": torch.__version__}
DRY = os.environ.get("PROBE_CPU") == "1"  # a dry run of the script itself on the CPU
DEV = torch.device("cpu" if DRY else "cuda")
S = TINY if DRY else Shapes()
N_FID = 16 if DRY else 512


def log(msg: str) -> None:
    print(f"[probe {time.strftime('%H:%M:%S')}] {msg}", flush=True)
    (OUT / "probe.json").write_text(json.dumps(R, indent=1, default=str))


def step(name: str, fn: Any, needs_s: float) -> None:
    if time.time() + needs_s > DEADLINE:
        R[name] = "skipped: deadline"
        log(f"{name}: skipped")
        return
    start = time.time()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - record and go on with the next lever
        import traceback

        R[name + "_error"] = f"{type(exc).__name__}: {exc}"[:2000]
        traceback.print_exc()
    log(f"{name}: done in {time.time() - start:.0f} s")


def rate(n: int, fn: Any) -> float:
    fn()  # warm (any recompilation happens here)
    times = sorted(timed(fn, DEV)[0] for _ in range(2))
    return n / times[0], n / times[1]


def cos_min(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1).min())


def engine_with(files: ModelFiles, esm: Any = None, dna: Any = None) -> Engine:
    eng = Engine(files, DEV, EngineSettings(force_model_length=True))
    eng.esm, eng.dnabert = esm, dna
    return eng


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="probe-"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "cache")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        log("cleaned up")
        print(json.dumps(R, indent=1, default=str))


def run(work: Path) -> None:
    from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm

    for dt in () if DRY else (torch.bfloat16, torch.float16):
        a = torch.randn(8192, 8192, device=DEV, dtype=dt)
        for _ in range(3):
            a @ a
        t, _ = timed(lambda a=a: [a @ a for _ in range(20)], DEV)
        R[f"peak_tflops_{str(dt)[6:]}"] = 2 * 8192**3 * 20 / t / 1e12
    files_d = build_models(work / "models", S, DEV)
    files = ModelFiles(Path(files_d["esm"]), Path(files_d["dnabert"]), Path(files_d["classifier"]))
    log(f"peaks {R.get('peak_tflops_bfloat16')}/{R.get('peak_tflops_float16')}; models built")
    proteins = random_proteins(S.n_proteins, S.protein_len)
    fid_p = random_proteins(N_FID, S.protein_len, seed=7)
    dna = random_frames_dna(S.n_dna)
    fid_d = random_frames_dna(N_FID, seed=8)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.enable_cudnn_sdp(False)
    if DRY:
        torch.cuda.synchronize = lambda *a: None  # Engine._warm_up synchronises the GPU
    ref: dict[str, torch.Tensor] = {}

    def reference() -> None:
        esm = load_esm(files.esm).to(DEV, torch.float32)
        eng = engine_with(files, esm=esm)
        t, ref["esm"] = timed(lambda: eng.embed_proteins(fid_p), DEV)
        R["esm_fp32_reference_proteins_per_s"] = N_FID / t
        eng.esm = esm = None
        dnab = load_dnabert(files.dnabert).to(DEV, torch.float32)
        ref["dna"] = engine_with(files, dna=dnab).embed_dna(fid_d)
        torch.cuda.empty_cache()

    step("reference", reference, 40)

    def esm_variant(name: str, dtype: torch.dtype, **kw: Any) -> None:
        esm = load_esm(files.esm).to(DEV, dtype)
        accelerate_esm(esm, True, **kw)
        eng = engine_with(files, esm=esm)
        c0 = time.time()
        eng._warm_up("esm", esm)
        R[f"{name}_compile_warmup_s"] = time.time() - c0
        R[f"{name}_proteins_per_s"] = rate(len(proteins), lambda: eng.embed_proteins(proteins))
        got = eng.embed_proteins(fid_p)
        R[f"{name}_cos_min"] = cos_min(got, ref["esm"])
        R[f"{name}_max_abs"] = float((got - ref["esm"]).abs().max())
        if name == "esm_fp16_regional":
            profile(eng, proteins[:429], "esm_fp16_regional")
        eng.esm = esm = None
        torch.cuda.empty_cache()
        log(f"{name}: {R[f'{name}_proteins_per_s']} cos {R[f'{name}_cos_min']:.6f}")

    step("esm_fp16_regional", lambda: esm_variant("esm_fp16_regional", torch.float16), 60)
    step("esm_fp8", lambda: esm_variant("esm_fp8", torch.bfloat16, fp8=True), 80)

    def dna_variant(name: str, mode: str, flex: bool) -> None:
        from virnucpro_tui.models.fast import FastDnabert, compile_module

        b = load_dnabert(files.dnabert).to(DEV, torch.bfloat16)
        if flex:
            accelerate_dnabert(b, True, mode=mode)
        else:  # the previous engine: bias built outside, stack compiled
            fast = FastDnabert(b.model, flex=False)
            compile_module(fast, "stack")
            b.model = fast
        eng = engine_with(files, dna=b)
        c0 = time.time()
        eng._warm_up("dnabert", b)
        R[f"{name}_compile_warmup_s"] = time.time() - c0
        R[f"{name}_frames_per_s"] = rate(len(dna), lambda: eng.embed_dna(dna))
        got = eng.embed_dna(fid_d)
        R[f"{name}_cos_min"] = cos_min(got, ref["dna"])
        if flex:
            profile(eng, dna[:2400], name, dna_stage=True)
        eng.dnabert = b = None
        torch.cuda.empty_cache()
        log(f"{name}: {R[f'{name}_frames_per_s']} cos {R[f'{name}_cos_min']:.6f}")

    step("dna_flex", lambda: dna_variant("dna_flex", "regional", True), 50)
    step("dna_bias_stack", lambda: dna_variant("dna_bias_stack", "stack", False), 50)
    step("warm_start", lambda: warm_start(files, work), 60)
    step(
        "esm_fp16_gelu_epilogue",
        lambda: esm_variant("esm_fp16_gelu_epilogue", torch.float16, gelu_epilogue=True),
        60,
    )
    step("esm_fp16_max_autotune", lambda: max_autotune(files, proteins, fid_p, ref), 200)
    step("esm_fp16_stack", lambda: esm_variant("esm_fp16_stack", torch.float16, mode="stack"), 120)


def warm_start(files: ModelFiles, work: Path) -> None:
    """A fresh process loading and compiling everything with the cache the steps above filled
    (fp16 ESM-2 and flex DNABERT-S compiled already): the warm start of a worker."""
    code = (
        "import time;t0=time.time();import torch,json,sys;"
        "from virnucpro_tui.models.engine import Engine;"
        "from virnucpro_tui.models.settings import EngineSettings,ModelFiles;from pathlib import Path;"
        "ev=[];f=ModelFiles(*[Path(p) for p in sys.argv[1:4]]);"
        "e=Engine(f,torch.device(sys.argv[5]),EngineSettings(force_model_length=True,"
        "compile_cache=Path(sys.argv[4])),emit=lambda t,**k:ev.append(k));"
        "t1=time.time();e.load();t2=time.time();"
        "print(json.dumps({'import_s':t1-t0,'load_s':t2-t1,'events':ev}))"
    )
    cache = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    args = [sys.executable, "-c", code, str(files.esm), str(files.dnabert), str(files.classifier)]
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    t = time.time()
    out = subprocess.run(
        [*args, cache, DEV.type], capture_output=True, text=True, env=env, timeout=200
    )
    R["warm_start_wall_s"] = time.time() - t
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    R["warm_start"] = json.loads(lines[-1]) if lines else out.stderr[-2000:]


def max_autotune(files: ModelFiles, proteins: list[str], fid_p: list[str], ref: Any) -> None:
    """Inductor max-autotune (Triton GEMM templates, bias+GELU fused in the epilogue) on the
    fixed 429x168 shape (static), regional: only this layer's four GEMMs are tuned."""
    from virnucpro_tui.models.fast import FastEsm

    esm = load_esm(files.esm).to(DEV, torch.float16)
    fast = FastEsm(esm.encoder)
    for layer in fast.layers:
        layer.compile(mode="max-autotune-no-cudagraphs", dynamic=False)
    esm.encoder = fast
    eng = engine_with(files, esm=esm)
    c0 = time.time()
    eng._warm_up("esm", esm)
    R["esm_fp16_max_autotune_compile_warmup_s"] = time.time() - c0
    R["esm_fp16_max_autotune_proteins_per_s"] = rate(
        len(proteins), lambda: eng.embed_proteins(proteins)
    )
    got = eng.embed_proteins(fid_p)
    R["esm_fp16_max_autotune_cos_min"] = cos_min(got, ref["esm"])
    log(f"max-autotune {R['esm_fp16_max_autotune_proteins_per_s']}")


def profile(eng: Engine, items: list[str], label: str, dna_stage: bool = False) -> None:
    """GPU kernel time by family for one batch, and how busy the GPU was (a bound on what
    CUDA graphs could save: launch gaps are the wall time the kernels leave idle)."""
    from torch.profiler import ProfilerActivity, profile

    fn = (lambda: eng.embed_dna(items)) if dna_stage else (lambda: eng.embed_proteins(items))
    fn()
    wall, _ = timed(fn, DEV)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    fams: dict[str, float] = {}
    top: dict[str, float] = {}
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CUDA:
            continue
        k, t = ev.name.lower(), getattr(ev, "device_time", 0.0)
        fam = (
            "gemm"
            if any(x in k for x in ("gemm", "cutlass", "sm90", "nvjet", "xmma", "scaled_mm"))
            else "attention"
            if any(x in k for x in ("flash", "fmha", "attention", "efficient", "flex"))
            else "memcpy"
            if "memcpy" in k or "memset" in k
            else "elementwise/reduction"
        )
        fams[fam] = fams.get(fam, 0.0) + t
        top[ev.name[:80]] = top.get(ev.name[:80], 0.0) + t
    total = sum(fams.values())
    R[f"{label}_profile_ms"] = {k: round(v / 1e3, 2) for k, v in fams.items()}
    R[f"{label}_gpu_busy_fraction"] = total / 1e6 / wall
    R[f"{label}_wall_ms"] = wall * 1e3
    R[f"{label}_top"] = sorted(((round(v / 1e3, 2), k) for k, v in top.items()), reverse=True)[:10]


if __name__ == "__main__":
    main()
    keys = [k for k in R if k.endswith(("_per_s", "_cos_min", "_compile_warmup_s", "_fraction"))]
    for k in keys:
        print(f"{k:50} {R[k]}")
