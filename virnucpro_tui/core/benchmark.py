"""Throughput of preparation (chunk + six-frame translation) on one core; used by ``bench``."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from virnucpro_tui.core.fasta import FastaRecord
from virnucpro_tui.core.prepare import prepare_records


@dataclass
class PrepareBench:
    chunks: int
    frames: int
    seconds: float

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds


def synthetic_records(
    n: int, length: int, seed: int = 0, coding_fraction: float = 0.3
) -> list[FastaRecord]:
    """Random DNA, with a share of stop-free ORF-like records (more frames to build)."""
    rng = random.Random(seed)
    sense = ["GCT", "AAA", "CTG", "ATG", "GGC", "TCA", "CCG", "ACG", "GAT", "CGT"]
    records = []
    for i in range(n):
        if rng.random() < coding_fraction:
            seq = "".join(rng.choices(sense, k=length // 3 + 1))[:length]
        else:
            seq = "".join(rng.choices("ACGT", k=length))
        records.append(FastaRecord(i, f"seq{i}", f"seq{i}", seq))
    return records


def bench_prepare(
    n_records: int = 20_000, length: int = 500, chunk_length: int = 500, repeats: int = 3
) -> PrepareBench:
    """Best of ``repeats`` runs of chunk + translate over in-memory records (one core)."""
    records = synthetic_records(n_records, length)
    best: PrepareBench | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        chunks = frames = 0
        for rec in prepare_records(records, chunk_length):
            chunks += len(rec.chunks)
            frames += sum(len(f) for f in rec.frames)
        took = time.perf_counter() - start
        if best is None or took < best.seconds:
            best = PrepareBench(chunks, frames, took)
    assert best is not None
    return best
