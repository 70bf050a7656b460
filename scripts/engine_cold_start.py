"""A cold ``Engine.load`` on the demo models, compiled on the CPU (``compile=True``), on an empty
compile cache: the engine's own warm-up events, with the layers compiled ahead of time (ESM-2's
in a process beside the engine, models/side_compile.py) or with ``torch.compile``.

    python3 scripts/engine_cold_start.py CACHE_DIR precompile|jit
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from virnucpro_tui.models.demo import ensure_demo_models
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles


def main() -> None:
    cache, mode = Path(sys.argv[1]), sys.argv[2]
    demo = ensure_demo_models()
    files = ModelFiles(demo.esm, demo.dnabert, demo.classifier_500)
    settings = EngineSettings(
        force_model_length=True,
        compile=True,
        precompile=mode == "precompile",
        exact_gelu=True,
        compile_cache=cache,
    )
    events: list[tuple[float, str, str, float | None]] = []
    began = time.perf_counter()

    def report(r: object) -> None:
        kind = type(r).__name__
        if kind in ("WarmupStarted", "WarmupDone", "CompileCacheFallback"):
            at = round(time.perf_counter() - began, 2)
            events.append((at, kind, getattr(r, "model", ""), getattr(r, "seconds", None)))

    Engine(files, torch.device("cpu"), settings, report=report).load()
    print(
        json.dumps(
            {"mode": mode, "load_s": round(time.perf_counter() - began, 2), "events": events}
        )
    )


if __name__ == "__main__":
    main()
