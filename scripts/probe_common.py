"""What the GPU probe scripts share (scripts/gpu_engine_probe.py, gpu_engine_probe2.py,
gpu_startup_probe.py): ``OUT_DIR [DEADLINE_S]`` from the command line, results written as JSON
after every step, steps skipped once the deadline has passed, a temporary work folder, and
fresh Python processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Probe:
    """One probe's results (``OUT_DIR/<name>.json``) and its deadline."""

    def __init__(self, name: str, default_deadline_s: float) -> None:
        self.name = name
        self.out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
        self.out.mkdir(parents=True, exist_ok=True)
        budget = float(sys.argv[2] if len(sys.argv) > 2 else default_deadline_s)
        self.deadline = time.time() + budget
        self.results: dict[str, Any] = {}

    def log(self, msg: object) -> None:
        print(f"[{self.name} {time.strftime('%H:%M:%S')}] {msg}", flush=True)
        text = json.dumps(self.results, indent=1, default=str)
        (self.out / f"{self.name}.json").write_text(text)

    def step(self, name: str, fn: Callable[[], Any], needs_s: float) -> None:
        """Run ``fn`` if ``needs_s`` seconds are left; an error is recorded and the probe goes on."""
        if time.time() + needs_s > self.deadline:
            self.results[name] = "skipped: deadline"
            self.log(f"{name}: skipped")
            return
        start = time.time()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - record and go on with the next step
            self.results[name + "_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            traceback.print_exc()
        self.log(f"{name}: done in {time.time() - start:.0f} s")

    def main(self, run: Callable[[Path], None]) -> None:
        """``run`` in a temporary folder, removed at the end; the results are printed last."""
        work = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        try:
            run(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self.log("cleaned up")
            print(json.dumps(self.results, indent=1, default=str))


def fresh_python(
    code: str,
    args: list[str],
    timeout: float,
    env_extra: dict[str, str] | None = None,
    *,
    env_drop: tuple[str, ...] = (),
    cwd: Path | None = None,
    stderr_tail: int = 2000,
) -> tuple[Any, float]:
    """Run ``code`` in a new interpreter (faulthandler on) without this process's
    TORCHINDUCTOR_CACHE_DIR (nor ``env_drop``; plus ``env_extra``): the last JSON line it
    prints (or its exit status and stderr's tail), and its wall seconds. Its engines compile
    before they run, unless ``env_extra`` says otherwise: a rate measured while the models run
    uncompiled beside their compilation (models/beside.py) is not the engine's rate."""
    drop = ("TORCHINDUCTOR_CACHE_DIR", *env_drop)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["VIRNUCPRO_TUI_COMPILE_BESIDE"] = "0"
    env.update(env_extra or {})
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    wall = time.time() - start
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if lines:
        return json.loads(lines[-1]), wall
    return f"exit status {out.returncode}; stderr: {out.stderr[-stderr_tail:]}", wall


def rate(n: int, fn: Any) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    best = 1e9
    for _ in range(2):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return round(n / best, 1)


CATEGORIES = (
    ("attention", ("flash_fwd", "fmha", "cudnn", "flex_attention", "attention_kernel")),
    ("gemm", ("gemm", "nvjet", "cutlass", "xmma", "sm90_", "cublas", "matmul", "splitk")),
)


def kernel_category(name: str) -> str:
    """Attention kernels (PyTorch's flash kernel is a CUTLASS kernel: tested first), matrix
    products, and the rest; Inductor's fused element-wise kernels go to the rest even when
    their name lists the attention op they feed (``triton_poi_fused__scaled_dot_product…``),
    except its FlexAttention template."""
    low = name.lower()
    if low.startswith("triton_") and not (low.startswith("triton_tem") and "flex" in low):
        return "norms_elementwise"
    return next((c for c, keys in CATEGORIES if any(k in low for k in keys)), "norms_elementwise")


def profile(fn: Any) -> dict[str, Any]:
    """GPU kernel time of one call by category, and the idle time between kernels."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    fn()
    torch.cuda.synchronize()
    with tprofile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t
    kernels = [
        e
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0
    ]
    spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy, end_ = 0.0, None
    for s, t_ in spans:
        if end_ is None or s > end_:
            busy += t_ - s
            end_ = t_
        elif t_ > end_:
            busy += t_ - end_
            end_ = t_
    first, last = (spans[0][0], max(t for _, t in spans)) if spans else (0, 0)
    cats: dict[str, float] = {}
    names: dict[str, float] = {}
    for e in kernels:
        cat = kernel_category(e.name)
        cats[cat] = cats.get(cat, 0.0) + e.device_time / 1e3
        names[e.name[:90]] = names.get(e.name[:90], 0.0) + e.device_time / 1e3
    return {
        "wall_ms": round(wall * 1e3, 2),
        "kernel_span_ms": round((last - first) / 1e3, 2),
        "busy_ms": round(busy / 1e3, 2),
        "idle_gaps_ms": round((last - first - busy) / 1e3, 2),
        "kernels": len(kernels),
        "by_category_ms": {k: round(v, 2) for k, v in sorted(cats.items())},
        "top_kernels_ms": sorted(((round(v, 2), k) for k, v in names.items()), reverse=True)[:25],
    }
