"""GPU probe (issue 21): ESM-2 fp16 with PyTorch's flash attention against cuDNN's attention
first (``EngineSettings.esm_attention``), through the engine, in one process: rate (best of two
after a warm pass) and the cosine between the two paths' pooled embeddings.

    python3 scripts/gpu_esm_attention_probe.py OUT_DIR [DEADLINE_S]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from probe_common import Probe

PROBE = Probe("esm_attention", default_deadline_s=150)


def run(work: Path) -> None:
    import torch

    from virnucpro_tui.measure.bench_child import Shapes, build_models, random_proteins
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    dev = torch.device("cuda")
    paths = build_models(work / "models", Shapes(), dev)
    torch.cuda.empty_cache()
    files = ModelFiles(Path(paths["esm"]), Path(paths["dnabert"]), Path(paths["classifier"]))
    prot = random_proteins(1716, 166)
    pooled: dict[str, Any] = {}

    def variant(attention: str) -> None:
        settings = EngineSettings(
            force_model_length=True, compile_cache=work / "cache", esm_attention=attention
        )
        e = Engine(files, dev, settings)
        t = time.perf_counter()
        e.load()
        PROBE.results[f"{attention}_load_s"] = round(time.perf_counter() - t, 2)
        tokens = e.esm.tokenize(prot)
        pooled[attention] = e.embed("esm", [], tokens=tokens).float().cpu()
        best = 1e9
        for _ in range(2):
            torch.cuda.synchronize()
            t = time.perf_counter()
            e.embed("esm", [], tokens=tokens)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        PROBE.results[f"{attention}_proteins_per_s"] = round(len(prot) / best, 1)
        del e
        torch.cuda.empty_cache()

    PROBE.step("flash", lambda: variant("flash"), 40)
    PROBE.step("cudnn", lambda: variant("cudnn"), 40)
    if len(pooled) == 2:
        cos = torch.nn.functional.cosine_similarity(pooled["flash"], pooled["cudnn"], dim=1)
        PROBE.results["cosine_min_cudnn_vs_flash"] = float(cos.min())


if __name__ == "__main__":
    PROBE.main(run)
