"""Six-frame translation and frame selection, exactly as the published tool (docs/architecture.md#the-scientific-contract).

The per-codon rules are the published ones; the work is vectorised with NumPy over many
chunks at once, which is what makes preparation fast enough to feed several GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import NamedTuple

import numpy as np

CODON_TABLE: dict[str, str] = {
    "TCA": "S", "TCC": "S", "TCG": "S", "TCT": "S", "TTC": "F", "TTT": "F", "TTA": "L", "TTG": "L",
    "TAC": "Y", "TAT": "Y", "TAA": "*", "TAG": "*", "TGC": "C", "TGT": "C", "TGA": "*", "TGG": "W",
    "CTA": "L", "CTC": "L", "CTG": "L", "CTT": "L", "CCA": "P", "CCC": "P", "CCG": "P", "CCT": "P",
    "CAC": "H", "CAT": "H", "CAA": "Q", "CAG": "Q", "CGA": "R", "CGC": "R", "CGG": "R", "CGT": "R",
    "ATA": "I", "ATC": "I", "ATT": "I", "ATG": "M", "ACA": "T", "ACC": "T", "ACG": "T", "ACT": "T",
    "AAC": "N", "AAT": "N", "AAA": "K", "AAG": "K", "AGC": "S", "AGT": "S", "AGA": "R", "AGG": "R",
    "GTA": "V", "GTC": "V", "GTG": "V", "GTT": "V", "GCA": "A", "GCC": "A", "GCG": "A", "GCT": "A",
    "GAC": "D", "GAT": "D", "GAA": "E", "GAG": "E", "GGA": "G", "GGC": "G", "GGG": "G", "GGT": "G",
}  # fmt: skip

_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")
_INVALID = 4  # base code for anything that is not upper-case A, C, G or T
_DROP = 0  # amino-acid byte of a codon that translates to nothing
_STOP = ord("*")
_DROP_BYTES = bytes([_DROP])
_OFFSET_BITS = np.tile(np.array([1, 2, 4], dtype=np.uint8), 40_000)
_PAD = "-"  # pads chunks to a shared width: not a base, so its codons translate to nothing
_WIDTH_STEP = 32  # chunks are padded to a multiple of this: a batch has few distinct widths


def _byte_table(mapping: dict[int, int], default: int) -> bytes:
    return bytes(mapping.get(i, default) for i in range(256))


# bytes.translate tables: byte -> byte lookups at memcpy speed, no index arrays
_BASE_CODE = _byte_table({b: i for i, b in enumerate(b"ACGT")}, _INVALID)
_RC_BASE_CODE = _byte_table({b: 3 - i for i, b in enumerate(b"ACGT")}, _INVALID)  # complement
_CODON_AA = _byte_table(
    {
        a * 25 + b * 5 + c: ord(CODON_TABLE["ACGT"[a] + "ACGT"[b] + "ACGT"[c]])
        for a, b, c in product(range(4), repeat=3)
    },
    _DROP,
)  # index: base-5 codon code, 0..124; any code with an _INVALID base maps to _DROP


class Frame(NamedTuple):
    """A kept reading frame: stop-free and non-empty."""

    id: str
    nucleotide: str
    protein: str


def reverse_complement(seq: str) -> str:
    """A<->T and C<->G only; other letters are kept as they are (published rule)."""
    return seq.translate(_COMPLEMENT)[::-1]


def translate_frame(seq: str, offset: int) -> str:
    """Reference translation of one frame (slow, per codon); used by tests and small inputs."""
    return "".join(CODON_TABLE.get(seq[i : i + 3], "") for i in range(offset, len(seq) - 2, 3))


def six_frames_reference(seq: str) -> list[str]:
    """The six proteins of an upper-case chunk, F1-F3 then R1-R3, codon by codon."""
    rc = reverse_complement(seq)
    return [translate_frame(seq, o) for o in range(3)] + [translate_frame(rc, o) for o in range(3)]


def _frames_from_proteins(chunk_id: str, upper: str, proteins: Sequence[str | None]) -> list[Frame]:
    frames = []
    rc = None
    for num, protein in enumerate(proteins, start=1):
        if not protein or "*" in protein:
            continue
        span = 3 * len(protein)
        if num <= 3:
            frames.append(Frame(f"{chunk_id}F{num}", upper[num - 1 : num + span], protein))
        else:
            rc = rc if rc is not None else reverse_complement(upper)
            r = num - 3
            frames.append(Frame(f"{chunk_id}R{r}", rc[r - 1 : r + span], protein))
    return frames


def identify_frames_reference(chunk_id: str, chunk: str) -> list[Frame]:
    """Kept frames of one chunk, straight from the published rules (the test oracle)."""
    upper = chunk.upper()
    return _frames_from_proteins(chunk_id, upper, six_frames_reference(upper))


def _offset_bits(width: int) -> np.ndarray:
    return (
        _OFFSET_BITS[:width] if width <= len(_OFFSET_BITS) else np.resize(_OFFSET_BITS[:3], width)
    )


def _codon_aa(codes: np.ndarray) -> np.ndarray:
    """Amino-acid byte of the codon starting at every position: (n, L) codes -> (n, L-2)."""
    idx = codes[:, :-2] * 25 + codes[:, 1:-1] * 5 + codes[:, 2:]  # uint8: at most 124
    n, width = idx.shape
    return np.frombuffer(idx.tobytes().translate(_CODON_AA), dtype=np.uint8).reshape(n, width)


def _kept_proteins(uppers: Sequence[str], width: int) -> dict[int, list[str | None]]:
    """The six proteins of each row with a kept frame (``None`` where not kept), by row.

    Every chunk is padded to ``width`` with a non-base, whose codons translate to nothing, so
    chunks of many lengths share one array. Frame ``o`` (0..2) of a strand is every third codon
    from position ``o``; weighting codon flags by 1, 2, 4 per position turns the per-frame
    checks into one fast row reduction.
    """
    n = len(uppers)
    forward = "".join(u.ljust(width, _PAD) for u in uppers).encode("ascii", "replace")
    # reversing the left-padded rows reverses each chunk and the row order; complemented, they
    # are the reverse strands padded on the right, last row first
    backward = "".join(u.rjust(width, _PAD) for u in uppers).encode("ascii", "replace")[::-1]
    strands = (forward.translate(_BASE_CODE), backward.translate(_RC_BASE_CODE))
    kept: dict[int, list[str | None]] = {}
    for strand, blob in enumerate(strands):
        aa = _codon_aa(np.frombuffer(blob, dtype=np.uint8).reshape(n, width))
        bits = _offset_bits(aa.shape[1])  # bit o marks codons of frame o
        stops = np.bitwise_or.reduce((aa == _STOP).view(np.uint8) * bits, axis=1)
        coding = np.bitwise_or.reduce((aa != _DROP).view(np.uint8) * bits, axis=1)
        keep = coding & ~stops
        flags = keep.tolist()
        for row in np.flatnonzero(keep).tolist():
            acids = aa[row].tobytes()
            proteins = kept.setdefault(row if strand == 0 else n - 1 - row, [None] * 6)
            for offset in range(3):
                if flags[row] >> offset & 1:
                    protein = acids[offset::3].translate(None, _DROP_BYTES).decode()
                    proteins[strand * 3 + offset] = protein
    return kept


def identify_frames_batch(chunks: Sequence[tuple[str, str]]) -> list[list[Frame]]:
    """Kept frames for many ``(chunk_id, chunk_seq)`` pairs, in order; vectorised by width."""
    uppers = [seq.upper() for _, seq in chunks]
    by_width: dict[int, list[int]] = {}
    for i, u in enumerate(uppers):
        if len(u) >= 3:  # shorter: no codon
            by_width.setdefault(-(-len(u) // _WIDTH_STEP) * _WIDTH_STEP, []).append(i)
    result: list[list[Frame]] = [[] for _ in chunks]
    for width, members in by_width.items():
        kept = _kept_proteins([uppers[i] for i in members], width)
        for row, proteins in kept.items():
            i = members[row]
            result[i] = _frames_from_proteins(chunks[i][0], uppers[i], proteins)
    return result
