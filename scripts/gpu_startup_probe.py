"""GPU probe (issue 13, time to the first shard): where a warm worker start goes, profiled, and
what Inductor's compile-worker settings change. Every start is a fresh process on one compile
cache, warmed first by an identical start.

    python3 scripts/gpu_startup_probe.py OUT_DIR [DEADLINE_S]
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

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
OUT.mkdir(parents=True, exist_ok=True)
DEADLINE = time.time() + float(sys.argv[2] if len(sys.argv) > 2 else 400)
R: dict[str, Any] = {}

# argv: esm dnabert classifier cache profile_path|-
START = r"""
import time, sys, json, cProfile, pstats, io
t0 = time.time()
prof = cProfile.Profile() if sys.argv[5] != "-" else None
if prof: prof.enable()
import torch
marks = {"import_torch_s": time.time() - t0}
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
t = time.time()
f = torch.compile(lambda x: torch.nn.functional.gelu(x) * 2, dynamic=True)
f(torch.randn(64, 64, device="cuda")); torch.cuda.synchronize()
marks["first_compile_s"] = time.time() - t
from pathlib import Path
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
t = time.time()
e = Engine(ModelFiles(*[Path(p) for p in sys.argv[1:4]]), torch.device("cuda"),
           EngineSettings(force_model_length=True, compile_cache=Path(sys.argv[4])))
e.load()
marks["engine_load_s"] = time.time() - t
marks["total_s"] = time.time() - t0
if prof:
    prof.disable()
    s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(60)
    Path(sys.argv[5]).write_text(s.getvalue())
    s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(40)
    Path(sys.argv[5] + ".tottime").write_text(s.getvalue())
print(json.dumps(marks))
"""

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "compile_threads_1": {"TORCHINDUCTOR_COMPILE_THREADS": "1"},
}


def log(msg: str) -> None:
    print(f"[startup {time.strftime('%H:%M:%S')}] {msg}", flush=True)
    (OUT / "startup.json").write_text(json.dumps(R, indent=1, default=str))


def start(args: list[str], env_extra: dict[str, str], profile: str) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    t = time.time()
    out = subprocess.run(
        [sys.executable, "-c", START, *args, profile],
        capture_output=True,
        text=True,
        timeout=200,
        env={**env, **env_extra},
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
    result["wall_s"] = round(time.time() - t, 2)
    return result


def main() -> None:
    import torch

    from virnucpro_tui.bench_child import Shapes, build_models

    work = Path(tempfile.mkdtemp(prefix="startup-"))
    try:
        paths = build_models(work / "models", Shapes(), torch.device("cuda"))
        log("models built")
        args = [paths["esm"], paths["dnabert"], paths["classifier"], str(work / "cache")]
        R["cold_default"] = start(args, {}, "-")
        log(f"cold: {R['cold_default']}")
        for name, env in VARIANTS.items():
            for i in (1, 2):
                if time.time() + 60 > DEADLINE:
                    return log("deadline")
                R[f"warm_{name}_{i}"] = start(args, env, "-")
                log(f"warm {name} {i}: {R[f'warm_{name}_{i}']}")
        if time.time() + 60 < DEADLINE:
            R["warm_profiled"] = start(args, {}, str(OUT / "warm_profile.txt"))
            log(f"profiled: {R['warm_profiled']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        log("done")


if __name__ == "__main__":
    main()
