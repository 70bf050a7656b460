"""A cold ``Engine.load`` on the demo models, compiled on the CPU (``compile=True``), on an empty
compile cache, then a first shard of 512 frames: the engine's own warm-up events, with
``torch.compile`` (``jit``), with the layers compiled ahead of time (``precompile``: ESM-2's in a
process beside the engine, models/side_compile.py), or with both models uncompiled while
processes beside compile them (``beside``, models/beside.py).

    python3 scripts/engine_cold_start.py CACHE_DIR jit|precompile|beside
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.measure.bench_child import random_frames_dna, random_proteins
from virnucpro_tui.models.demo import ensure_demo_models
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles

DNA, PROTEINS = random_frames_dna(512), random_proteins(512, 166)


def main() -> None:
    cache, mode = Path(sys.argv[1]), sys.argv[2]
    demo = ensure_demo_models()
    files = ModelFiles(demo.esm, demo.dnabert, demo.classifier_500)
    settings = EngineSettings(
        force_model_length=True,
        compile=True,
        precompile=mode in ("precompile", "beside"),
        compile_beside=mode == "beside",
        exact_gelu=True,
        compile_cache=cache,
    )
    events: list[tuple[float, str, str, float | None]] = []
    began = time.perf_counter()

    def report(r: object) -> None:
        kind = type(r).__name__
        if kind in (
            "WarmupStarted",
            "WarmupDone",
            "CompileCacheFallback",
            "CompilingBeside",
            "CompiledBeside",
        ):
            at = round(time.perf_counter() - began, 2)
            events.append((at, kind, getattr(r, "model", ""), getattr(r, "seconds", None)))

    engine = Engine(files, torch.device("cpu"), settings, report=report)
    engine.load()
    load_s = round(time.perf_counter() - began, 2)
    frames = [Frame(f"f{i}", d, p) for i, (d, p) in enumerate(zip(DNA, PROTEINS, strict=True))]
    engine.process_shard(Shard("cold", 0, frames))
    shard_s = round(time.perf_counter() - began, 2)
    engine.finish()
    print(
        json.dumps(
            {
                "mode": mode,
                "load_s": load_s,
                "first_shard_done_s": shard_s,
                "finished_s": round(time.perf_counter() - began, 2),
                "events": events,
            }
        )
    )


if __name__ == "__main__":
    main()
