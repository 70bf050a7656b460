#!/usr/bin/env python
"""Pre-flight cost on a full-size ESM-2 checkpoint (a measurement, not a test).

Writes a fair-esm checkpoint of the real esm2_t36_3B_UR50D shapes (36 layers, d = 2560, 40
heads, FFN 10240; random fp16 values, 5.7 GB) into DIR with ``write_fair_esm_checkpoint``,
streaming every tensor from a 256 MB memory-mapped pool of random values (no tensor is held in
memory), then times ``check_esm`` on it in fresh processes: with a cold page cache (when
``/proc/sys/vm/drop_caches`` may be written), then warm. Deletes the checkpoint at the end.

    .venv/bin/python scripts/preflight_cost.py /tmp/esm3b --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from virnucpro_tui.models.esm import EncoderShape, write_fair_esm_checkpoint  # noqa: E402
from virnucpro_tui.models.esm.fair import fair_esm_shapes  # noqa: E402

ESM2_3B = EncoderShape(36, 2560, 40, ffn_dim=10240)
POOL_VALUES = 128 * 2**20  # fp16 values: 256 MB

MEASURE = """
import json, sys, time
from pathlib import Path
def disk_reads():
    return next(int(l.split()[1]) for l in open("/proc/self/io") if l.startswith("read_bytes"))
import torch
from virnucpro_tui.models.esm import check_esm
before, start = disk_reads(), time.perf_counter()
check_esm(Path(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - start, "disk_read_bytes": disk_reads() - before,
                  "cuda_initialised": torch.cuda.is_initialized()}))
"""


def write_checkpoint(root: Path) -> Path:
    pool = root / "random-pool.bin"
    rng = np.random.default_rng(0)
    with pool.open("wb") as handle:
        for _ in range(POOL_VALUES // 2**20):
            values = rng.standard_normal(2**20, dtype=np.float32) * 0.02
            handle.write(values.astype(np.float16).tobytes())
    state = {}
    for key, dims in fair_esm_shapes(ESM2_3B, contact_head=True).items():
        n = int(np.prod(dims))
        offset = 2 * int(rng.integers(0, POOL_VALUES - n + 1))
        view = np.memmap(pool, dtype=np.float16, mode="c", offset=offset, shape=dims)
        state[key] = torch.from_numpy(view)
    path = write_fair_esm_checkpoint(state, root / "esm2_t36_3B_UR50D.pt", ESM2_3B)
    del state
    pool.unlink()
    return path


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def measure(path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="where to write the checkpoint (deleted after)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        path = write_checkpoint(args.dir)
        size = path.stat().st_size
        print(f"wrote {path} ({size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
        for label in ("cold", "warm"):
            for _ in range(args.runs):
                if label == "cold" and not drop_page_cache():
                    print("cold: not measured (/proc/sys/vm/drop_caches cannot be written)")
                    break
                result = measure(path)
                print(
                    f"{label}: {result['seconds']:.3f} s, "
                    f"{result['disk_read_bytes'] / 1e6:.1f} MB read from disk of "
                    f"{size / 1e6:,.0f} MB, CUDA initialised: {result['cuda_initialised']}"
                )
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
