"""Viral regions (docs/outputs.md#viral_regionstsv-and-viral_regionsbed): property tests that
the regions cover exactly the viral chunks, at any chunk length, in the chunker's own spans."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro_tui.core.chunking import chunk_sequence, chunk_spans, single_chunk
from virnucpro_tui.core.outputs import ChunkConsensus
from virnucpro_tui.core.regions import read_region_rows, sequence_regions, viral_runs

# a chunk: None (no stop-free frame), or (P(others), P(virus)) of its best frames
CHUNK = st.one_of(
    st.none(),
    st.tuples(st.floats(0, 1, width=32), st.floats(0, 1, width=32)),
)


@st.composite
def sequences(draw: st.DrawFn) -> tuple[int, int, dict[int, ChunkConsensus]]:
    chunk_length = draw(st.integers(1, 700))
    length = draw(st.integers(1, 12 * chunk_length))
    n = len(chunk_spans(length, chunk_length))
    calls = draw(st.lists(CHUNK, min_size=n, max_size=n))
    chunks = {
        k: ChunkConsensus(np.float32(c[0]), np.float32(c[1]))
        for k, c in enumerate(calls)
        if c is not None
    }
    return length, chunk_length, chunks


def covered_chunks(regions: list, n: int) -> set[int]:
    return {k for r in regions for k in range(r.first, r.last + 1) if k < n}


@settings(max_examples=400, deadline=None)
@given(sequences())
def test_regions_cover_exactly_the_viral_chunks_at_any_chunk_length(case) -> None:
    length, chunk_length, chunks = case
    spans = chunk_spans(length, chunk_length)
    regions = sequence_regions("s", length, chunk_length, chunks)
    viral = {k for k, c in chunks.items() if c.is_virus}
    assert covered_chunks(regions, len(spans)) == viral
    for a, b in zip(regions, regions[1:], strict=False):
        assert b.first > a.last + 1, "two regions that touch are one region"
    for r in regions:
        assert (r.start, r.end) == (spans[r.first][0], spans[r.last][1])
        assert 0 <= r.start < r.end <= length
        scores = [float(chunks[k].max_virus) for k in range(r.first, r.last + 1)]
        assert r.max_virus_score == max(scores)
        assert abs(r.mean_virus_score - sum(scores) / len(scores)) < 1e-9
        assert r.whole_sequence == (r.first == 0 and r.last == len(spans) - 1)


@settings(max_examples=300, deadline=None)
@given(sequences(), st.integers(0, 4))
def test_a_region_gap_merges_only_runs_at_most_k_non_viral_chunks_apart(case, gap) -> None:
    length, chunk_length, chunks = case
    viral = [
        k in chunks and chunks[k].is_virus for k in range(len(chunk_spans(length, chunk_length)))
    ]
    regions = sequence_regions("s", length, chunk_length, chunks, gap)
    assert {k for k, v in enumerate(viral) if v} <= covered_chunks(regions, len(viral))
    for r in regions:
        assert viral[r.first] and viral[r.last], "a region starts and ends with a viral chunk"
        inside = viral[r.first : r.last + 1]
        longest_break = max(
            (len(s) for s in "".join("x" if v else "." for v in inside).split("x")), default=0
        )
        assert longest_break <= gap
    for a, b in zip(regions, regions[1:], strict=False):
        assert b.first - a.last - 1 > gap


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 700))
def test_chunk_spans_are_where_the_chunker_cuts(length, chunk_length) -> None:
    seq = "".join("ACGT"[i % 4] for i in range(length))
    pieces = chunk_sequence("s", seq, chunk_length)
    spans = chunk_spans(length, chunk_length)
    assert [text for _, text in pieces] == [seq[a:b] for a, b in spans]
    assert spans[0][0] == 0 and spans[-1][1] == length


def test_a_chunk_without_frames_breaks_a_region_unless_the_gap_spans_it() -> None:
    v = ChunkConsensus(np.float32(0.2), np.float32(0.8))
    chunks = {0: v, 2: v}  # chunk 1 has no stop-free frame
    regions = sequence_regions("s", 1500, 500, chunks)
    assert [(r.start, r.end) for r in regions] == [(0, 500), (1000, 1500)]
    merged = sequence_regions("s", 1500, 500, chunks, gap=1)
    assert [(r.start, r.end, r.chunks, r.whole_sequence) for r in merged] == [(0, 1500, 3, True)]
    assert merged[0].tsv_row() == "s\t1\t1500\t1500\t3\t0.8\t0.8\tyes\n"
    assert merged[0].bed_row() == "s\t0\t1500\ts\t800\t.\n"


def test_viral_runs_of_nothing_viral_is_empty() -> None:
    assert viral_runs([False, False]) == []
    assert viral_runs([True, False, True], gap=0) == [(0, 0), (2, 2)]
    assert viral_runs([True, False, True], gap=1) == [(0, 2)]


@settings(max_examples=200, deadline=None)
@given(
    chunk_length=st.integers(1, 700),
    reads=st.lists(
        st.tuples(st.integers(1, 700), st.floats(0.5, 1, width=32) | st.sampled_from([0.5, 1.0])),
        min_size=1,
        max_size=20,
    ),
)
def test_reads_rows_made_a_block_at_a_time_are_the_regions_rows(chunk_length, reads) -> None:
    """``read_region_rows`` (the report's path for reads) writes what ``Region`` writes."""
    reads = [(min(n, chunk_length), p) for n, p in reads]
    assert all(single_chunk(n, chunk_length) for n, _ in reads)
    ids = [f"r{k}" for k in range(len(reads))]
    scores = np.array([p for _, p in reads], dtype=np.float32)
    tsv, bed = read_region_rows(ids, [n for n, _ in reads], scores)
    regions = [
        sequence_regions(sid, n, chunk_length, {0: ChunkConsensus(np.float32(1 - p), s)})
        for sid, (n, p), s in zip(ids, reads, scores, strict=True)
    ]
    assert [len(r) for r in regions] == [1] * len(reads)
    assert tsv == [r[0].tsv_row() for r in regions]
    assert bed == [r[0].bed_row() for r in regions]
    assert not single_chunk(chunk_length + 1, chunk_length) and not single_chunk(0, chunk_length)
