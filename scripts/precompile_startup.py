"""Warm starts of the compiled layers on the CPU, traced by Dynamo each time (``torch.compile``
with its FX graph cache warm) against loaded whole (``models/precompile.py``): the demo models'
ESM-2 (two graphs) and DNABERT-S (FlexAttention), each start a fresh process on its own
persistent cache, cold once and then warm.

    python3 scripts/precompile_startup.py OUT_JSON [WARM_REPEATS]

The CPU's kernels are C++, not Triton: this shows what skipping Dynamo's tracing saves, not a
GPU's start (scripts/gpu_startup_probe.py measures that).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = r"""
import json, sys, time
t0 = time.perf_counter()
import torch, torch._dynamo, torch._inductor.compile_fx, torch.nn.attention.flex_attention
from pathlib import Path
from virnucpro_tui.models import compile_cache
from virnucpro_tui.models.demo import ensure_demo_models
from virnucpro_tui.models.dnabert import load_dnabert
from virnucpro_tui.models.esm import load_esm
from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm
from virnucpro_tui.models.precompile import AheadOfTime

cache, ahead_of_time = Path(sys.argv[1]), sys.argv[2] == "precompile"
compile_cache.configure(cache / "inductor")
marks, said = {"imports_s": time.perf_counter() - t0}, []
demo = ensure_demo_models()
esm, dna = load_esm(demo.esm), load_dnabert(demo.dnabert)
ahead = lambda name: AheadOfTime(cache / name, said.append) if ahead_of_time else None
accelerate_esm(esm, True, ahead=ahead("esm"))
accelerate_dnabert(dna, True, attention="flex", ahead=ahead("dna"))
t = time.perf_counter()
for batch in (["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MA", "GGSL" * 9], ["MKTAYIAKQRQ"] * 3):
    esm.forward_pooled(*esm.pad(esm.tokenize(batch)))
marks["esm_first_batches_s"] = time.perf_counter() - t
t = time.perf_counter()
dna.forward_pooled(*dna.collate(dna.tokenize(["ATGC" * 60, "ACGTTGCA" * 9, "ATGAAACCC" * 20])))
marks["dnabert_first_batch_s"] = time.perf_counter() - t
marks["said"] = said
print("RESULT " + json.dumps(marks))
"""


def start(cache: Path, mode: str) -> dict[str, object]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", START, str(cache), mode], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "wall_s": time.perf_counter() - began}


def main() -> None:
    out, repeats = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("jit", "precompile"):
            cache = Path(tmp) / mode
            cold = start(cache, mode)
            warm = [start(cache, mode) for _ in range(repeats)]
            keys = ("esm_first_batches_s", "dnabert_first_batch_s", "wall_s")
            results[mode] = {
                "cold": cold,
                "warm": warm,
                "warm_median": {
                    k: round(statistics.median(float(w[k]) for w in warm), 3) for k in keys
                },  # type: ignore[arg-type]
            }
            print(mode, results[mode]["warm_median"], flush=True)
    import torch

    meta = {"torch": torch.__version__, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    out.write_text(json.dumps({"meta": meta, **results}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
