"""Second GPU probe (issue 13): DNABERT-S attention A/B with tokens ahead, where a warm
worker start spends its time, and torchao's recommended Inductor settings for fp8.

    python3 scripts/gpu_engine_probe2.py OUT_DIR [DEADLINE_S]
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from probe_common import Probe, fresh_python

from virnucpro_tui.measure.bench_child import (
    Shapes,
    build_models,
    random_frames_dna,
    random_proteins,
    timed,
)

PROBE = Probe("probe2", default_deadline_s=190)
R, log, step = PROBE.results, PROBE.log, PROBE.step
DEV = torch.device("cuda")

START_CODE = r"""
import time, sys, json
t0 = time.time()
import torch
t_import = time.time()
torch.cuda.init(); torch.zeros(1, device="cuda"); torch.cuda.synchronize()
t_cuda = time.time()
marks = {"import_torch_s": t_import - t0, "cuda_init_s": t_cuda - t_import}
if sys.argv[5] == "trivial":
    f = torch.compile(lambda x: torch.nn.functional.gelu(x) * 2, dynamic=True)
    f(torch.randn(64, 64, device="cuda")); torch.cuda.synchronize()
    marks["trivial_compile_s"] = time.time() - t_cuda
from pathlib import Path
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
ev = []
t = time.time()
f = ModelFiles(*[Path(p) for p in sys.argv[1:4]])
e = Engine(f, torch.device("cuda"), EngineSettings(force_model_length=True,
           compile_cache=Path(sys.argv[4])), report=lambda r: ev.append((round(time.time() - t, 2), r.model, type(r).__name__, getattr(r, "seconds", None))))
e.load()
marks["engine_load_s"] = time.time() - t
from torch._dynamo.utils import counters
marks["inductor_counters"] = {k: dict(v) for k, v in counters.items() if k in ("inductor", "aot_autograd")}
marks["events"] = ev
print(json.dumps(marks))
"""


def best(n: int, fn: Any) -> float:
    fn()
    return n / min(timed(fn, DEV)[0] for _ in range(2))


def run(work: Path) -> None:
    from virnucpro_tui.models.dnabert import load_dnabert
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.fast import accelerate_dnabert
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    paths = build_models(work / "models", Shapes(), DEV)
    files = ModelFiles(*[Path(paths[k]) for k in ("esm", "dnabert", "classifier")])
    cache = work / "cache"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    log("models built")
    dna = random_frames_dna(8192)
    engines: dict[str, Engine] = {}

    def dnabert_variants() -> None:
        for name, mode, attention in (
            ("bias_regional", "regional", "bias"),
            ("flex_regional", "regional", "flex"),
            ("bias_stack", "stack", "bias"),
        ):
            b = load_dnabert(files.dnabert).to(DEV, torch.bfloat16)
            accelerate_dnabert(b, True, mode=mode, attention=attention)
            eng = Engine(files, DEV, EngineSettings(force_model_length=True))
            eng.dnabert = b
            tokens = b.tokenize(dna)
            t0 = time.time()
            eng._warm_up("dnabert", b)
            R[f"dna_{name}_warmup_s"] = time.time() - t0
            engines[name] = (eng, tokens)
        for round_ in (1, 2):  # interleaved, twice
            for name, (eng, tokens) in engines.items():
                rate = best(len(dna), lambda e=eng, t=tokens: e.embed("dnabert", [], tokens=t))
                R[f"dna_{name}_frames_per_s_{round_}"] = rate
        log({k: round(v) for k, v in R.items() if k.startswith("dna_") and "per_s" in k})

    step("dnabert", dnabert_variants, 60)
    engines.clear()
    torch.cuda.empty_cache()

    def starts() -> None:
        args = [str(files.esm), str(files.dnabert), str(files.classifier), str(work / "c2")]
        for label, mode in (("cold", "plain"), ("warm_trivial", "trivial")):
            start, wall = fresh_python(START_CODE, [*args, mode], timeout=150)
            R[f"start_{label}"], R[f"start_{label}_wall_s"] = start, wall
            log(f"start {label}: {R[f'start_{label}_wall_s']:.1f} s")

    step("starts", starts, 100)

    def fp8_recommended() -> None:
        from virnucpro_tui.models.esm import load_esm
        from virnucpro_tui.models.fast import FastEsm, compile_layers

        torch._inductor.config.coordinate_descent_tuning = True
        torch._inductor.config.coordinate_descent_check_all_directions = True
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            PerRow,
            quantize_,
        )

        esm = load_esm(files.esm).to(DEV, torch.bfloat16)
        fast = FastEsm(esm.encoder)
        quantize_(
            fast.layers,
            Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
            filter_fn=lambda m, _n: isinstance(m, torch.nn.Linear),
        )
        compile_layers(fast.layers)
        esm.encoder = fast
        eng = Engine(files, DEV, EngineSettings(force_model_length=True))
        eng.esm = esm
        t0 = time.time()
        eng._warm_up("esm", esm)
        R["fp8_recommended_inductor_warmup_s"] = time.time() - t0
        proteins = random_proteins(3432, 166)
        tokens = esm.tokenize(proteins)
        R["fp8_recommended_inductor_proteins_per_s"] = best(
            len(proteins), lambda: eng.embed("esm", [], tokens=tokens)
        )

    step("fp8_recommended", fp8_recommended, 60)


if __name__ == "__main__":
    PROBE.main(run)
