"""Generate sample_data/: synthetic contigs and reads for the demo (deterministic, seed 2026).

How it is made (see sample_data/README.md):
- "orf_rich" sequences are runs of random sense codons (no stop) on one strand, sometimes with
  a second ORF on the reverse strand: they keep stop-free frames after chunking, like dense
  viral genomes do.
- "noncoding" sequences are random DNA at a GC content drawn from 30-70%: almost every frame
  of a 300/500-bp chunk hits a stop codon, like much intergenic DNA.
- A few records carry lower-case (soft-masked) stretches, runs of N and IUPAC codes, to show
  how the published rules treat them (case kept in chunks; ambiguous codons dropped).
Nothing here is real biology; it exercises the pipeline end to end.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from virnucpro_tui.core.translation import CODON_TABLE, reverse_complement

SENSE = [c for c, aa in CODON_TABLE.items() if aa != "*"]
OUT = Path(__file__).resolve().parents[1] / "sample_data"


def orf(rng: random.Random, codons: int) -> str:
    return "ATG" + "".join(rng.choice(SENSE) for _ in range(codons - 1))


def noncoding(rng: random.Random, length: int) -> str:
    gc = rng.uniform(0.3, 0.7)
    weights = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(rng.choices("ACGT", weights, k=length))


def orf_rich(rng: random.Random, length: int) -> str:
    parts, total = [], 0
    while total < length:
        piece = orf(rng, rng.randint(120, 400))
        if rng.random() < 0.3:
            piece = reverse_complement(piece)
        spacer = noncoding(rng, rng.randint(0, 30))
        parts += [piece, spacer]
        total += len(piece) + len(spacer)
    return "".join(parts)[:length]


def decorate(rng: random.Random, seq: str) -> str:
    """Soft-mask a stretch, add an N run or an IUPAC code, in a few records."""
    s = list(seq)
    roll = rng.random()
    if roll < 0.08:
        a = rng.randrange(len(s))
        for i in range(a, min(len(s), a + rng.randint(20, 120))):
            s[i] = s[i].lower()
    elif roll < 0.13:
        a = rng.randrange(len(s))
        s[a : a + rng.randint(5, 40)] = "N" * len(s[a : a + 40])
        s = s[: len(seq)]
    elif roll < 0.16:
        s[rng.randrange(len(s))] = rng.choice("RYKMSW")
    return "".join(s)


def wrap(seq: str, width: int = 70) -> str:
    return "\n".join(seq[i : i + width] for i in range(0, len(seq), width))


def records(
    rng: random.Random, n: int, lengths: tuple[int, int], prefix: str, coding: float = 0.45
) -> list[str]:
    """``n`` FASTA records; a share ``coding`` of them ORF-rich, the others noncoding."""
    out = []
    for i in range(1, n + 1):
        kind = "orf_rich" if rng.random() < coding else "noncoding"
        length = rng.randint(*lengths)
        seq = decorate(rng, orf_rich(rng, length) if kind == "orf_rich" else noncoding(rng, length))
        out.append(f">{prefix}_{i:04d} synthetic {kind} length={len(seq)}\n{wrap(seq)}\n")
    return out


def main() -> None:
    rng = random.Random(2026)
    OUT.mkdir(exist_ok=True)
    contigs = records(rng, 180, (400, 4000), "contig")
    (OUT / "sample_contigs.fa").write_text("".join(contigs))
    reads = records(rng, 150, (150, 600), "read")
    with gzip.GzipFile(OUT / "sample_reads.fa.gz", "wb", mtime=0) as fh:
        fh.write("".join(reads).encode())
    print(f"wrote {len(contigs)} contigs and {len(reads)} reads to {OUT}")


if __name__ == "__main__":
    main()
