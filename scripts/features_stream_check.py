"""Stream a large ``prediction_features.pt`` and read it back (docs/features.md#the-pt-file).

Writes ``--rows`` rows of ``--dim`` float32 values (default 400,000 x 3,328: 5.3 GB, past the
4 GiB that needs ZIP64) through ``PtFeatureWriter`` in blocks of 1,024 rows, sampling the
process's peak RSS, then loads the file with ``torch.load(weights_only=True, mmap=True)``,
checks its shape, ids and sampled rows against what was written, and reports the RSS after the
load (the data stays on disk). Row i is a fixed random block row ``i % 1024`` plus ``i``, so any
row can be checked without keeping them.

    python scripts/features_stream_check.py --rows 400000 --dir /tmp
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from virnucpro_tui.core.torch_archive import PtFeatureWriter

BLOCK = 1024


def expected_rows(block: np.ndarray, start: int, count: int) -> np.ndarray:
    index = np.arange(start, start + count)
    return block[index % BLOCK] + index[:, None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=3328)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    import torch

    work = Path(tempfile.mkdtemp(prefix="features-stream-", dir=args.dir))
    block = np.random.default_rng(0).standard_normal((BLOCK, args.dim)).astype(np.float32)
    rss_start = psutil.Process().memory_info().rss
    start = time.perf_counter()
    try:
        writer = PtFeatureWriter(work, args.rows, args.dim)
        for first in range(0, args.rows, BLOCK):
            count = min(BLOCK, args.rows - first)
            ids = [f"frame{i}" for i in range(first, first + count)]
            writer.write(ids, expected_rows(block, first, count))
        writer.commit()
        write_s = time.perf_counter() - start
        peak_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        path = work / "prediction_features.pt"
        size = path.stat().st_size
        start = time.perf_counter()
        loaded = torch.load(path, weights_only=True, mmap=True)
        load_s = time.perf_counter() - start
        data, ids = loaded["data"], loaded["ids"]
        samples = [0, 1, BLOCK, args.rows // 2, args.rows - 1]
        rows_ok = all(
            np.array_equal(data[i].numpy(), expected_rows(block, i, 1)[0]) for i in samples
        )
        report = {
            "rows": args.rows,
            "dim": args.dim,
            "file_gib": round(size / 2**30, 2),
            "zip64_needed": size > 2**32,
            "write_seconds": round(write_s, 1),
            "write_mb_per_s": round(size / write_s / 1e6),
            "rss_before_mib": round(rss_start / 2**20),
            "peak_rss_while_writing_mib": round(peak_write / 2**20),
            "mmap_load_seconds": round(load_s, 1),
            "rss_after_mmap_load_mib": round(psutil.Process().memory_info().rss / 2**20),
            "shape_ok": tuple(data.shape) == (args.rows, args.dim),
            "ids_ok": len(ids) == args.rows and ids[-1] == f"frame{args.rows - 1}",
            "sampled_rows_ok": rows_ok,
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
