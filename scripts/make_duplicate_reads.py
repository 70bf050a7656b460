"""A read set with a known fraction of duplicate reads, from the sample contigs (for the
deduplication benchmark, docs/benchmarks.md#identical-frames-computed-once-cpu).

The sample contigs are cut into non-overlapping reads of ``--read-length`` bases (the last
piece of a contig is dropped when shorter); ``--fraction`` of the output reads are then exact
copies of other reads, under their own ids, spread through the file (seeded, deterministic).
A duplicated read has the same chunks and so the same frames: about that fraction of the frames
are computed once. The exact count is printed by ``run`` (job_done.duplicate_frames).

    python scripts/make_duplicate_reads.py --fraction 0.3 --copies 8 --coding --out reads.fa
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from virnucpro_tui.core.fasta import iter_records
from virnucpro_tui.core.translation import identify_frames_batch

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "sample_contigs.fa"


def unique_reads(source: Path, length: int, copies: int, coding: bool) -> list[str]:
    """Reads cut from every contig; ``copies`` passes shift the cut by length/copies; with
    ``coding``, only reads with at least one stop-free frame (they are the ones computed)."""
    reads = []
    for shift in range(copies):
        offset = shift * length // copies
        for record in iter_records(source):
            seq = record.seq.upper()
            reads += [seq[i : i + length] for i in range(offset, len(seq) - length + 1, length)]
    reads = list(dict.fromkeys(reads))  # distinct sequences only
    if coding:
        frames = identify_frames_batch([(f"r{i}", r) for i, r in enumerate(reads)])
        reads = [r for r, f in zip(reads, frames, strict=True) if f]
    return reads


def with_duplicates(reads: list[str], fraction: float, rng: random.Random) -> list[str]:
    """The reads plus copies, so that ``fraction`` of the result are copies."""
    copies = round(len(reads) * fraction / (1 - fraction))
    out = reads + [rng.choice(reads) for _ in range(copies)]
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fraction", type=float, default=0.3, help="share of duplicate reads")
    parser.add_argument("--read-length", type=int, default=500)
    parser.add_argument("--copies", type=int, default=1, help="shifted passes over the contigs")
    parser.add_argument("--coding", action="store_true", help="only reads with a kept frame")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--source", type=Path, default=SAMPLE)
    args = parser.parse_args()
    reads = with_duplicates(
        unique_reads(args.source, args.read_length, args.copies, args.coding),
        args.fraction,
        random.Random(args.seed),
    )
    with args.out.open("w") as fh:
        fh.writelines(f">read{i}\n{seq}\n" for i, seq in enumerate(reads))
    distinct = len(set(reads))
    print(
        f"{args.out}: {len(reads):,} reads of {args.read_length} bp, {len(reads) - distinct:,} "
        f"duplicates ({(len(reads) - distinct) / len(reads):.1%})"
    )


if __name__ == "__main__":
    main()
