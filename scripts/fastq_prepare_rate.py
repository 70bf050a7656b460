"""Preparation rate by input format and compression (docs/benchmarks.md#fastq-input).

Writes a seeded read set (by default 200,000 reads of 150 bp and 20,000 of 500-1,000 bp, a third
of them stop-free ORFs) as FASTA.gz, FASTQ.gz and, with --all, FASTQ plain/.bz2/.xz/.zst, then
times what a run does with each input on one core: the validation pass (`scan_input`) and the
preparation (`prepare_file`: reading, checks, chunking, six-frame translation), the inputs
interleaved, best of --repeats, wall and CPU seconds. Pin it to one core:

    taskset -c 0 .venv/bin/python scripts/fastq_prepare_rate.py
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import lzma
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from virnucpro_tui.core.fasta import scan_input
from virnucpro_tui.core.prepare import prepare_file

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

SENSE = np.frombuffer(b"GCTAAACTGATGGGCTCACCGACGGATCGT", dtype=np.uint8).reshape(10, 3)
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
QUALITY = np.frombuffer(b"#,:FFF:FFFFFFFF", dtype=np.uint8)


def read_set(short: int, long: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """(name, sequence, quality): ``short`` 150-bp reads then ``long`` of 500-1,000 bp."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([np.full(short, 150), rng.integers(500, 1001, long)])
    reads = []
    for i, n in enumerate(lengths):
        if rng.random() < 1 / 3:
            seq = SENSE[rng.integers(0, 10, n // 3 + 1)].ravel()[:n]
        else:
            seq = BASES[rng.integers(0, 4, n)]
        qual = QUALITY[rng.integers(0, len(QUALITY), n)]
        name = f"M01234:12:000000000-ABCDE:1:1101:{15000 + i}:{1300 + i % 997}"
        reads.append((name, seq.tobytes(), qual.tobytes()))
    return reads


def fastq(reads: list[tuple[str, bytes, bytes]]) -> bytes:
    return b"".join(b"@%s 1:N:0:1\n%s\n+\n%s\n" % (n.encode(), s, q) for n, s, q in reads)


def fasta(reads: list[tuple[str, bytes, bytes]]) -> bytes:
    return b"".join(b">%s 1:N:0:1\n%s\n" % (n.encode(), s) for n, s, _ in reads)


def timed(work: Callable[[], int]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process, and the work's result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def prepared_chunks(path: Path, length: int) -> int:
    return sum(len(rec.chunks) for rec in prepare_file(path, length))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=200_000)
    parser.add_argument("--long", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="also plain, bz2, xz and zstd FASTQ")
    args = parser.parse_args()
    reads = read_set(args.short, args.long, seed=1)
    fq, fa = fastq(reads), fasta(reads)
    inputs = {"FASTA.gz": gzip.compress(fa, 6), "FASTQ.gz": gzip.compress(fq, 6)}
    if args.all:
        inputs |= {
            "FASTA": fa,
            "FASTQ": fq,
            "FASTQ.bz2": bz2.compress(fq),
            "FASTQ.xz": lzma.compress(fq),
            "FASTQ.zst": zstd.compress(fq),
        }
    print(
        f"{len(reads):,} reads, {sum(len(s) for _, s, _ in reads):,} bases; --length {args.length}"
    )
    best: dict[tuple[str, str], tuple[float, float]] = {}
    chunks = 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"reads.{name.lower()}" for name in inputs}
        for name, data in inputs.items():
            paths[name].write_bytes(data)
        for _ in range(args.repeats):  # interleaved: a busy spell on a shared machine hits all
            for name, path in paths.items():
                for step, work in (
                    ("scan", lambda p=path: scan_input(p, args.length).chunks),
                    ("prepare", lambda p=path: prepared_chunks(p, args.length)),
                ):
                    wall, cpu, chunks = timed(work)
                    old = best.get((name, step), (wall, cpu))
                    best[name, step] = (min(old[0], wall), min(old[1], cpu))
    print(f"best of {args.repeats}; chunks/s = chunks / prepare CPU seconds (one core)")
    print(
        f"{'input':<10} {'MB':>6} {'scan s (cpu)':>13} {'prepare s (cpu)':>16} {'chunks':>8} "
        f"{'chunks/s':>9}"
    )
    for name, data in inputs.items():
        (scan_wall, scan_cpu), (prep_wall, prep_cpu) = best[name, "scan"], best[name, "prepare"]
        print(
            f"{name:<10} {len(data) / 1e6:>6.1f} {scan_wall:>6.2f} ({scan_cpu:.2f}) "
            f"{prep_wall:>8.2f} ({prep_cpu:.2f}) {chunks:>8,} {chunks / prep_cpu:>9,.0f}"
        )


if __name__ == "__main__":
    main()
