"""Memory and time of deduplication on a large job, without models
(docs/benchmarks.md#identical-frames-computed-once-cpu).

Feeds N frames of realistic size (a 500-bp chunk's frame: 499 nucleotides, 166 amino acids), of
which a given fraction repeat an earlier frame, through the orchestrator's deduplication
(``core/dedup.py``: ``FrameTable`` + ``distinct_frames`` writing the duplicates file), then
keeps the distinct frames' scores the way assembly does (``ScoreStore``). Prints the process's
RSS before and after each step, its peak, the table's own bytes, the key log's size on disk and
the time per frame. Frames are made on the fly from their number, so the input costs no memory.

    python scripts/dedup_memory.py --frames 10000000 --fraction 0.3
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil

from virnucpro_tui.core.dedup import FrameTable, ScoreStore, distinct_frames, key_stride
from virnucpro_tui.core.translation import Frame


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def frames(n: int, fraction: float, seed: int) -> Iterator[Frame]:
    """Frame i is distinct frame k (its nucleotide slice starts with k's digits), or, with
    probability ``fraction``, a copy of an earlier distinct frame."""
    rng = random.Random(seed)
    base_dna = "".join(rng.choices("ACGT", k=499))
    base_protein = "".join(rng.choices("ACDEFGHIKLMNPQRSTVWY", k=166))
    distinct = 0
    for i in range(n):
        if distinct and rng.random() < fraction:
            k = rng.randrange(distinct)
        else:
            k, distinct = distinct, distinct + 1
        tag = f"{k:012d}"
        yield Frame(f"read{i}_chunk_1F1", tag + base_dna[12:], base_protein)


class NullText(io.TextIOBase):
    """The duplicates file's writes, counted and dropped (its size is reported, not kept)."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        return len(s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000_000)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where the key log goes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dedup-memory-", dir=args.dir))
    before = rss()
    table = FrameTable(work / ".dedup-keys.partial", key_stride(500))
    sink = NullText()
    start = time.perf_counter()
    computed = sum(
        1 for _ in distinct_frames(frames(args.frames, args.fraction, args.seed), table, sink)
    )
    seconds = time.perf_counter() - start
    after_table = rss()
    key_log = (work / ".dedup-keys.partial").stat().st_size
    table_bytes = table.nbytes
    table.close()
    store = ScoreStore()
    p = np.float32(0.5)
    for _ in range(computed):
        store.append(p, p)
    after_store = rss()
    work.rmdir()
    report = {
        "frames": args.frames,
        "duplicate_fraction_asked": args.fraction,
        "distinct_frames": computed,
        "duplicate_frames": table.duplicates,
        "seconds": round(seconds, 1),
        "microseconds_per_frame": round(1e6 * seconds / args.frames, 2),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_table_mib": round(after_table / 2**20, 1),
        "table_mib": round(table_bytes / 2**20, 1),
        "table_bytes_per_distinct_frame": round(table_bytes / computed, 1),
        "key_log_gib": round(key_log / 2**30, 2),
        "duplicates_file_mib": round(sink.chars / 2**20, 1),
        "rss_after_score_store_mib": round(after_store / 2**20, 1),
        "peak_rss_mib": round(peak_rss() / 2**20, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
