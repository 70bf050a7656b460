"""GPU probe for the engine levers of issue 13, in one call: variants, fidelity and profiles.

    python3 scripts/gpu_engine_probe.py OUT_DIR [DEADLINE_S]

Random weights of the real shapes. Every variant is timed twice (median of the two after a
warm pass, CUDA-synchronised) and compared with the fp32 reference modules (TF32 off) on the
same proteins / frames. Writes OUT_DIR/probe.json after every step and prints a table last.
Steps run in order of importance and are skipped once DEADLINE_S (default 480) has passed.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from probe_common import Probe, fresh_python

from virnucpro_tui.measure.bench_child import (
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

PROBE = Probe("probe", default_deadline_s=480)
R = PROBE.results
R["torch"] = torch.__version__
REF: dict[str, torch.Tensor] = {}  # the fp32 reference embeddings, "esm" and "dnabert"
DRY = os.environ.get("PROBE_CPU") == "1"  # a dry run of the script itself on the CPU
DEV = torch.device("cpu" if DRY else "cuda")
S = TINY if DRY else Shapes()
N_FID = 16 if DRY else 512


log, step = PROBE.log, PROBE.step


def rate(n: int, fn: Any) -> float:
    fn()  # warm (any recompilation happens here)
    times = sorted(timed(fn, DEV)[0] for _ in range(2))
    return n / times[0], n / times[1]


def cos_min(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1).min())


def measure(
    name: str, eng: Engine, model: str, embed: Any, items: list[str], fid: list[str], unit: str
) -> torch.Tensor:
    """Compile and warm-up seconds of ``model``, ``unit``/s over ``items`` and the fidelity on
    ``fid`` against the fp32 reference; returns the embeddings of ``fid``."""
    c0 = time.time()
    eng._warm_up(model, eng.esm if model == "esm" else eng.dnabert)
    R[f"{name}_compile_warmup_s"] = time.time() - c0
    R[f"{name}_{unit}_per_s"] = rate(len(items), lambda: embed(items))
    got = embed(fid)
    R[f"{name}_cos_min"] = cos_min(got, REF[model])
    return got


def engine_with(files: ModelFiles, esm: Any = None, dna: Any = None) -> Engine:
    eng = Engine(files, DEV, EngineSettings(force_model_length=True))
    eng.esm, eng.dnabert = esm, dna
    return eng


def run(work: Path) -> None:
    from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "cache")
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

    def reference() -> None:
        esm = load_esm(files.esm).to(DEV, torch.float32)
        eng = engine_with(files, esm=esm)
        t, REF["esm"] = timed(lambda: eng.embed("esm", fid_p), DEV)
        R["esm_fp32_reference_proteins_per_s"] = N_FID / t
        eng.esm = esm = None
        dnab = load_dnabert(files.dnabert).to(DEV, torch.float32)
        REF["dnabert"] = engine_with(files, dna=dnab).embed("dnabert", fid_d)
        torch.cuda.empty_cache()

    step("reference", reference, 40)

    def esm_variant(name: str, dtype: torch.dtype, **kw: Any) -> None:
        esm = load_esm(files.esm).to(DEV, dtype)
        accelerate_esm(esm, True, **kw)
        eng = engine_with(files, esm=esm)
        got = measure(name, eng, "esm", partial(eng.embed, "esm"), proteins, fid_p, "proteins")
        R[f"{name}_max_abs"] = float((got - REF["esm"]).abs().max())
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
        measure(name, eng, "dnabert", partial(eng.embed, "dnabert"), dna, fid_d, "frames")
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
    step("esm_fp16_max_autotune", lambda: max_autotune(files, proteins, fid_p), 200)
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
        "compile_cache=Path(sys.argv[4])),report=lambda r:ev.append(__import__('msgspec').structs.asdict(r)));"
        "t1=time.time();e.load();t2=time.time();"
        "print(json.dumps({'import_s':t1-t0,'load_s':t2-t1,'events':ev}))"
    )
    cache = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    args = [str(files.esm), str(files.dnabert), str(files.classifier), cache, DEV.type]
    R["warm_start"], R["warm_start_wall_s"] = fresh_python(code, args, timeout=200)


def max_autotune(files: ModelFiles, proteins: list[str], fid_p: list[str]) -> None:
    """Inductor max-autotune (Triton GEMM templates, bias+GELU fused in the epilogue) on the
    fixed 429x168 shape (static), regional: only this layer's four GEMMs are tuned."""
    from virnucpro_tui.models.fast import FastEsm

    esm = load_esm(files.esm).to(DEV, torch.float16)
    fast = FastEsm(esm.encoder)
    for layer in fast.layers:
        layer.compile(mode="max-autotune-no-cudagraphs", dynamic=False)
    esm.encoder = fast
    eng = engine_with(files, esm=esm)
    name = "esm_fp16_max_autotune"
    measure(name, eng, "esm", partial(eng.embed, "esm"), proteins, fid_p, "proteins")
    log(f"max-autotune {R['esm_fp16_max_autotune_proteins_per_s']}")


def profile(eng: Engine, items: list[str], label: str, dna_stage: bool = False) -> None:
    """GPU kernel time by family for one batch, and how busy the GPU was (a bound on what
    CUDA graphs could save: launch gaps are the wall time the kernels leave idle)."""
    from torch.profiler import ProfilerActivity, profile

    fn = (lambda: eng.embed("dnabert", items)) if dna_stage else (lambda: eng.embed("esm", items))
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
    PROBE.main(run)
    keys = [k for k in R if k.endswith(("_per_s", "_cos_min", "_compile_warmup_s", "_fraction"))]
    for k in keys:
        print(f"{k:50} {R[k]}")
