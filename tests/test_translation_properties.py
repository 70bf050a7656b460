"""Property tests: the vectorised translation equals the published per-codon rules, and the
chunking keeps its invariants, on any input (docs/architecture.md#the-scientific-contract)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro_tui.core.chunking import chunk_sequence, chunk_starts
from virnucpro_tui.core.translation import (
    identify_frames_batch,
    identify_frames_reference,
    reverse_complement,
    six_frames_reference,
)

DNA = st.text(alphabet="ACGT", min_size=1, max_size=700)
MESSY = st.text(alphabet="ACGTacgtNnRYKMSWBDHV-U", min_size=1, max_size=400)
# codons without stops on one strand: many kept frames, the interesting case
ORFISH = st.lists(
    st.sampled_from(["GCT", "AAA", "CTG", "ATG", "GGC", "TCA", "CCG", "ACG"]),
    min_size=1,
    max_size=200,
).map("".join)


def published_chunk_starts(length: int, size: int) -> list[int]:
    """A literal transcription of the published split_fasta_chunk loop."""
    num = -(-length // size)
    repeat = num * size - length
    lower = int(repeat / num)
    need = repeat - lower * (num - 1)
    steps = [lower + 1] * need + [lower] * (num - 1 - need) + [0]
    starts, move = [], 0
    for a, b in zip(range(0, length, size), steps, strict=False):
        starts.append(a - move if a > 1 else a)
        move += b
    return starts


@given(st.integers(min_value=1, max_value=20_000), st.sampled_from([300, 500, 7, 64]))
def test_chunk_starts_match_published_loop(length: int, size: int) -> None:
    assert chunk_starts(length, size) == published_chunk_starts(length, size)


@given(st.integers(min_value=1, max_value=20_000), st.sampled_from([300, 500]))
def test_chunks_cover_the_sequence(length: int, size: int) -> None:
    starts = chunk_starts(length, size)
    assert len(starts) == math.ceil(length / size)
    assert starts[0] == 0
    assert all(b > a for a, b in zip(starts, starts[1:], strict=False))
    ends = [min(s + size, length) for s in starts]
    assert ends[-1] == length
    # consecutive chunks overlap or touch: nothing is skipped
    assert all(starts[i + 1] <= ends[i] for i in range(len(starts) - 1))
    assert all(e - s == size for s, e in zip(starts[:-1], ends[:-1], strict=False))


@given(MESSY, st.sampled_from([300, 500, 50]))
def test_chunk_ids_and_case(seq: str, size: int) -> None:
    chunks = chunk_sequence("rec", seq, size)
    assert [c[0] for c in chunks] == [f"rec_chunk_{k}" for k in range(1, len(chunks) + 1)]
    assert all(c[1] in seq for c in chunks)  # case kept


@settings(max_examples=300)
@given(st.lists(st.one_of(DNA, MESSY, ORFISH), min_size=1, max_size=12))
def test_vectorised_frames_equal_reference(seqs: list[str]) -> None:
    chunks = [(f"c{i}", s) for i, s in enumerate(seqs)]
    assert identify_frames_batch(chunks) == [identify_frames_reference(cid, s) for cid, s in chunks]


@given(st.one_of(DNA, ORFISH))
def test_frame_invariants(seq: str) -> None:
    for frame in identify_frames_reference("x", seq):
        assert frame.protein and "*" not in frame.protein
        num = int(frame.id[-1])
        source = seq.upper() if frame.id[-2] == "F" else reverse_complement(seq.upper())
        # the published slice is one base longer than the coding span (clipped at the end)
        assert frame.nucleotide == source[num - 1 : num + 3 * len(frame.protein)]
        assert len(frame.nucleotide) == min(3 * len(frame.protein) + 1, len(source) - num + 1)


def test_ambiguous_codons_are_dropped_not_rejected() -> None:
    # ATG NNN GCT: the NNN codon translates to nothing
    assert six_frames_reference("ATGNNNGCT")[0] == "MA"
    assert six_frames_reference("atgaaa".upper())[0] == "MK"
    assert reverse_complement("ACGTNRU") == "URNACGT"


UNICODE = st.text(alphabet="ACGTacgtNn-ßéſı", min_size=0, max_size=90)


@settings(max_examples=200)
@given(st.lists(st.one_of(DNA, MESSY, ORFISH, UNICODE), min_size=1, max_size=40))
def test_chunks_of_many_lengths_share_padded_arrays_exactly(seqs: list[str]) -> None:
    """Chunks are padded to a shared width (docs/benchmarks.md#orchestrator-capacity-on-one-core-issue-16):
    empty, one- and two-base chunks, non-ASCII letters (whose upper case may be longer) and
    every length in a width step give the reference's frames, in order."""
    chunks = [(f"c{i}", s) for i, s in enumerate(seqs)]
    assert identify_frames_batch(chunks) == [identify_frames_reference(cid, s) for cid, s in chunks]


def test_padding_never_makes_or_hides_a_frame() -> None:
    """A 31-base ORF padded to 32 and a 33-base ORF padded to 64 in one batch, both strands."""
    orf = "ATG" + "GCT" * 10  # 33 bases, no stop on the forward strand
    chunks = [("a", orf[:31]), ("b", orf), ("c", reverse_complement(orf)), ("d", "AT")]
    got = identify_frames_batch(chunks)
    assert got == [identify_frames_reference(cid, s) for cid, s in chunks]
    assert [f.id for f in got[1]][:1] == ["bF1"] and got[1][0].protein == "MAAAAAAAAAA"
    assert "cR1" in [f.id for f in got[2]] and got[3] == []
