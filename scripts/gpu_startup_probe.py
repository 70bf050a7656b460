"""GPU probe (issues 13 and 21, time to the first shard): where a warm worker start goes, by the
engine's own load and warm-up events and profiled, and what importing the compiler ahead (as a
GPU standby does) saves. Every start is a fresh process on one compile cache, warmed first by
an identical start. ``precompile`` starts use their own cache: layers compiled ahead of time
and loaded whole (models/precompile.py), cold once, then warm, with and without the weights
sent through page-locked buffers (models/device_copy.py); ``beside`` starts run uncompiled
while processes beside compile (models/beside.py). After the load each start runs a 2,048-frame
shard twice (``shard_1_done_s``: its first shard, from the start). Run it with the bytecode cache
a pip install has (scripts/gpu_startup_bench.sh). ``PROBE_FULL_WARMUP=1`` starts warm up at full
size on a warm cache, as before 2026-12-08 (models/warmup.py). The last start is profiled
(``warm_profile.txt`` and its raw ``.pstats``).

    python3 scripts/gpu_startup_probe.py OUT_DIR [DEADLINE_S] [STEP,STEP,...]
"""

from __future__ import annotations

from pathlib import Path

from probe_common import Probe, fresh_python

PROBE = Probe("startup", default_deadline_s=400)

# argv: esm dnabert classifier cache profile_path|-
START = r"""
import os, time, sys, json, cProfile, pstats, io
pre = {}
if os.environ.get("PROBE_PREIMPORT") == "1":  # what a GPU standby imports before its config
    t = time.time()
    import torch, torch._dynamo, torch._inductor.compile_fx, torch.nn.attention.flex_attention
    import virnucpro_tui.models.engine, virnucpro_tui.models.fast
    pre["preimport_s"] = round(time.time() - t, 3)
if os.environ.get("PROBE_FULL_WARMUP") == "1":  # a warm cache's warm-up at full size, as before
    import virnucpro_tui.models.warmup as warmup
    warmup.LIGHT_ROWS = 1 << 30
t0 = time.time()
prof = cProfile.Profile() if sys.argv[5] != "-" else None
if prof: prof.enable()
import torch
marks = {"import_torch_s": time.time() - t0, **pre}
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
marks["cuda_init_s"] = time.time() - t0
from pathlib import Path
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
events = []
t = time.time()
e = Engine(ModelFiles(*[Path(p) for p in sys.argv[1:4]]), torch.device("cuda"),
           EngineSettings(force_model_length=True, compile_cache=Path(sys.argv[4])),
           report=lambda r: events.append((round(time.time() - t, 3), type(r).__name__,
                                           getattr(r, "model", ""), getattr(r, "seconds", None))))
e.load()
marks["engine_load_s"] = time.time() - t
from virnucpro_tui.core.shards import Shard
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.measure.bench_child import random_frames_dna, random_proteins
shard = Shard("probe", 0, [Frame(f"f{i}", d, p) for i, (d, p) in enumerate(
    zip(random_frames_dna(2048), random_proteins(2048, 166)))])
for n in (1, 2):  # a 2,048-frame shard as the bench's first; again (compiled beside by then?)
    t1 = time.time()
    e.process_shard(shard)
    marks[f"shard_{n}_s"] = time.time() - t1
    marks[f"shard_{n}_done_s"] = time.time() - t0
    if n == 1:
        for side in list(e.beside.running.values()):
            side.process.wait(300)
marks["events"] = events
from torch._dynamo.utils import counters
marks["counters"] = {
    k: dict(v) for k, v in counters.items() if k in ("inductor", "aot_autograd", "stats")
}
marks["total_s"] = time.time() - t0
if prof:
    prof.disable()
    prof.dump_stats(sys.argv[5] + ".pstats")  # callers and callees, read back off the machine
    for order, suffix in (("cumulative", ""), ("tottime", ".tottime")):
        s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats(order).print_stats(60)
        Path(sys.argv[5] + suffix).write_text(s.getvalue())
print(json.dumps(marks, default=str))
"""

JIT = {"VIRNUCPRO_TUI_PRECOMPILE": "0"}  # torch.compile in each process (the default before)
PREIMPORT = {**JIT, "PROBE_PREIMPORT": "1"}
PRECOMPILE = {"PROBE_PREIMPORT": "1", "VIRNUCPRO_TUI_PRECOMPILE": "1"}
STAGED_COPY = {"VIRNUCPRO_TUI_STAGED_COPY": "1"}  # weights through page-locked buffers
FULL_WARMUP = {"PROBE_FULL_WARMUP": "1"}  # full-size warm-up batches on a warm cache, as before
STAGED = {**PRECOMPILE, **STAGED_COPY}
BESIDE = {**PRECOMPILE, "VIRNUCPRO_TUI_COMPILE_BESIDE": "1"}  # uncompiled until compiled beside


def run(work: Path) -> None:
    import torch

    from virnucpro_tui.measure.bench_child import Shapes, build_models

    paths = build_models(work / "models", Shapes(), torch.device("cuda"))
    PROBE.log("models built")
    models = [paths["esm"], paths["dnabert"], paths["classifier"]]

    def start(label: str, env: dict[str, str], cache: str = "cache", profile: str = "-") -> None:
        result, wall = fresh_python(START, [*models, str(work / cache), profile], 200, env)
        PROBE.results[label] = {"marks": result, "wall_s": round(wall, 2)}

    plan: list[tuple[str, dict[str, str], str]] = [
        # the defaults since 2026-12-08 (compiled beside on a cold cache, then loaded whole),
        # and a warm cache's warm-up at full size beside the light one
        ("cold_beside", BESIDE, "beside"),
        ("warm_beside", BESIDE, "beside"),
        ("warm_beside_full_warmup", {**BESIDE, **FULL_WARMUP}, "beside"),
        ("warm_beside_2", BESIDE, "beside"),
        ("warm_beside_full_warmup_2", {**BESIDE, **FULL_WARMUP}, "beside"),
        # with light warm-ups ESM-2's read and copy (1.3 s) outlasts DNABERT-S's load beside it
        ("warm_beside_staged", {**BESIDE, **STAGED_COPY}, "beside"),
        ("warm_beside_staged_2", {**BESIDE, **STAGED_COPY}, "beside"),
        ("cold_default", JIT, "cache"),
        ("warm_preimport_1", PREIMPORT, "cache"),
        ("cold_precompile", PRECOMPILE, "precompiled"),
        ("warm_precompile_1", PRECOMPILE, "precompiled"),
        ("warm_precompile_full_warmup_1", {**PRECOMPILE, **FULL_WARMUP}, "precompiled"),
        ("warm_precompile_staged_1", STAGED, "precompiled"),
        ("warm_precompile_2", PRECOMPILE, "precompiled"),
        ("warm_precompile_full_warmup_2", {**PRECOMPILE, **FULL_WARMUP}, "precompiled"),
        ("warm_precompile_staged_2", STAGED, "precompiled"),
        ("warm_preimport_2", PREIMPORT, "cache"),
        ("warm_default_1", JIT, "cache"),
    ]
    import sys

    chosen = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    plan = [step for step in plan if chosen is None or step[0] in chosen]
    for label, env, cache in plan:
        PROBE.step(label, lambda label=label, env=env, cache=cache: start(label, env, cache), 60)
    profile = str(PROBE.out / "warm_profile.txt")
    PROBE.step("warm_profiled", lambda: start("warm_profiled", BESIDE, "beside", profile), 60)


if __name__ == "__main__":
    PROBE.main(run)
