"""GPU probe (issue 21): start-up levers and speed levers, each measured in a fresh process.

    python3 scripts/gpu_levers_probe.py OUT_DIR [DEADLINE_S] [OLD_CODE_ROOT]

Start-up rows: ``Engine.load`` and one 2,048-frame first batch per model, in a new interpreter,
on the code of this checkout ("new") and of ``OLD_CODE_ROOT`` ("old"), with Python's bytecode
cache on (``PYTHONPYCACHEPREFIX``, what a pip install has) or off (the GPU image's
``PYTHONDONTWRITEBYTECODE=1``), on a cold then a warm compile cache; then a warm start on a
deliberately corrupted cache. Speed rows: ESM-2 fp16 and DNABERT-S (bias / flex) with cuDNN
attention off and on, and a torch.profiler breakdown of one batch of each by kernel category.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from probe_common import Probe, fresh_python, profile, rate

PROBE = Probe("levers", default_deadline_s=480)
NEW_ROOT = Path(__file__).resolve().parent.parent
PYC = "/tmp/pyc-warm"
FORBIDDEN = ("transformers", "textual", "rich", "virnucpro_tui.cli", "virnucpro_tui.ui")

# argv: esm dnabert classifier cache
START = r"""
import time, sys, json
t0 = time.time()
import torch
marks = {"import_torch_s": round(time.time() - t0, 3)}
from pathlib import Path
from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
marks["import_engine_s"] = round(time.time() - t0, 3)
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
marks["cuda_init_s"] = round(time.time() - t0, 3)
reports = []
def keep(*a, **k):
    r = a[-1] if a else k
    name = type(r).__name__ if not isinstance(r, dict) else a[0]
    fields = {f: getattr(r, f) for f in getattr(r, "__struct_fields__", ())} if not isinstance(r, dict) else r
    reports.append([round(time.time() - t0, 2), name, fields.get("model"), fields.get("phase"), fields.get("seconds"), str(fields.get("message", ""))[:300]])
files = ModelFiles(*[Path(p) for p in sys.argv[1:4]])
settings = EngineSettings(force_model_length=True, compile_cache=Path(sys.argv[4]))
e = Engine(files, torch.device("cuda"), settings, report=keep)
e.load()
marks["engine_loaded_s"] = round(time.time() - t0, 3)
import random
rng = random.Random(0)
prot = ["".join(rng.choices("ACDEFGHIKLMNPQRSTVWY", k=166)) for _ in range(2048)]
dna = ["".join(rng.choices("ACGT", k=499)) for _ in range(2048)]
e.embed("dnabert", dna); e.embed("esm", prot); torch.cuda.synchronize()
marks["first_batch_done_s"] = round(time.time() - t0, 3)
from torch._dynamo.utils import counters
marks["counters"] = {k: dict(v) for k, v in counters.items() if k in ("inductor", "aot_autograd", "stats")}
marks["reports"] = reports
marks["forbidden_modules"] = [m for m in FORBIDDEN if m in sys.modules]
import torch._inductor.config as ic
marks["compile_threads"] = ic.compile_threads
try:
    from torch._dynamo.utils import compile_times
    marks["compile_times"] = compile_times(repr="str")[-3000:]
except Exception as exc:
    marks["compile_times"] = repr(exc)
print(json.dumps(marks, default=str))
""".replace("FORBIDDEN", repr(FORBIDDEN))


def fresh(root: Path, args: list[str], bytecode: bool, timeout: float = 240) -> dict[str, Any]:
    path = {"PYTHONPATH": f"{os.environ.get('SITE', '/tmp/site')}:{root}"}
    if bytecode:
        extra, drop = {**path, "PYTHONPYCACHEPREFIX": PYC}, "PYTHONDONTWRITEBYTECODE"
    else:
        extra, drop = {**path, "PYTHONDONTWRITEBYTECODE": "1"}, "PYTHONPYCACHEPREFIX"
    value, wall = fresh_python(
        START, args, timeout, extra, env_drop=(drop,), cwd=root, stderr_tail=3000
    )
    result: dict[str, Any] = value if isinstance(value, dict) else {"stderr": value}
    result["wall_s"] = round(wall, 2)
    return result


def importtime(root: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = f"{os.environ.get('SITE', '/tmp/site')}:{root}"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = PYC
    code = "import virnucpro_tui.pool.worker, virnucpro_tui.models.engine"
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    top = [(us, name) for us, name in rows if not name.startswith("  ")]
    names = {name.strip() for _, name in rows}
    return {
        "wall_s": round(time.time() - start, 2),
        "top_level_us": sorted(top, reverse=True)[:15],
        "forbidden_imported": [m for m in FORBIDDEN if m in names],
    }


def corrupt(cache: Path) -> int:
    """Damage the compiled kernels and graphs of a warm cache (truncate every file)."""
    n = 0
    for path in cache.rglob("*"):
        if (
            path.is_file()
            and path.suffix in (".py", ".cubin", ".so", ".json", "")
            and path.name != "warm"
        ):
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 3] + b"\x00garbage")
            n += 1
    return n


def speed(files: dict[str, str], work: Path) -> None:
    """ESM-2 and DNABERT-S rates with cuDNN attention off/on, DNABERT-S bias vs flex, and a
    kernel-category breakdown of one batch of each."""
    import torch

    from virnucpro_tui.measure.bench_child import random_frames_dna, random_proteins
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    dev = torch.device("cuda")
    mf = ModelFiles(Path(files["esm"]), Path(files["dnabert"]), Path(files["classifier"]))
    out: dict[str, Any] = {}
    PROBE.results["speed"] = out
    prot = random_proteins(1716, 166)
    dna = random_frames_dna(8192)
    for attention in ("bias", "flex"):
        settings = EngineSettings(
            force_model_length=True, compile_cache=work / "cache-speed", dnabert_attention=attention
        )
        variant(Engine(mf, dev, settings), attention, prot, dna, out)
        torch.cuda.empty_cache()


def variant(e: Any, attention: str, prot: list[str], dna: list[str], out: dict[str, Any]) -> None:
    import torch

    e.load()
    p_tok, d_tok = e.esm.tokenize(prot), e.dnabert.tokenize(dna)
    for cudnn in (False, True):
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        torch.compiler.reset()
        e._warm_up("esm", e.esm)
        e._warm_up("dnabert", e.dnabert)
        tag = f"{attention}_cudnn{int(cudnn)}"
        if attention == "bias":
            out[f"esm_{tag}"] = rate(len(prot), lambda: e.embed("esm", [], tokens=p_tok))
        out[f"dnabert_{tag}"] = rate(len(dna), lambda: e.embed("dnabert", [], tokens=d_tok))
        PROBE.log(f"speed {tag}: {out}")
    if attention == "bias":
        torch.backends.cuda.enable_cudnn_sdp(False)
        torch.compiler.reset()
        e._warm_up("esm", e.esm)
        e._warm_up("dnabert", e.dnabert)
        out["profile_esm"] = profile(lambda: e.embed("esm", [], tokens=p_tok[:429]))
        out["profile_dnabert"] = profile(lambda: e.embed("dnabert", [], tokens=d_tok[:2048]))


def run(work: Path) -> None:
    import torch

    from virnucpro_tui.measure.bench_child import Shapes, build_models

    old_root = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    PROBE.results["device"] = torch.cuda.get_device_name(0)
    PROBE.results["torch"] = torch.__version__
    paths = build_models(work / "models", Shapes(), torch.device("cuda"))
    torch.cuda.empty_cache()
    PROBE.log("models built")
    args = [paths["esm"], paths["dnabert"], paths["classifier"]]
    PROBE.step(
        "importtime_new", lambda: PROBE.results.update(importtime_new=importtime(NEW_ROOT)), 20
    )

    def start(label: str, root: Path, cache: str, bytecode: bool) -> None:
        PROBE.results[label] = fresh(root, [*args, str(work / cache)], bytecode)

    plan: list[tuple[str, Path | None, str, bool]] = [
        ("new_cold_pyc", NEW_ROOT, "cache-new", True),
        ("new_warm_pyc_1", NEW_ROOT, "cache-new", True),
        ("new_warm_pyc_2", NEW_ROOT, "cache-new", True),
        ("new_warm_nopyc", NEW_ROOT, "cache-new", False),
        ("old_cold_pyc", old_root, "cache-old", True),
        ("old_warm_pyc", old_root, "cache-old", True),
    ]
    for label, root, cache, bytecode in plan:
        if root is not None:
            PROBE.step(label, lambda a=(label, root, cache, bytecode): start(*a), 45)
    PROBE.step("speed", lambda: speed(paths, work), 150)

    def corrupted() -> None:
        keyed = [p for p in (work / "cache-new").iterdir() if p.is_dir()]
        PROBE.results["corrupted_files"] = sum(corrupt(p) for p in keyed)
        start("new_warm_corrupted", NEW_ROOT, "cache-new", True)

    PROBE.step("corrupted", corrupted, 60)


if __name__ == "__main__":
    PROBE.main(run)
