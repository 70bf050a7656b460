"""The deduplication table (core/dedup.py): ordinals in order of first appearance, confirmed on
the full key (a digest collision never merges two frames), growth, the key log on disk, the
duplicates file, and the scores kept for the duplicates at assembly. Milliseconds each."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest

from virnucpro_tui.core import dedup
from virnucpro_tui.core.dedup import (
    Duplicate,
    FrameTable,
    ScoreStore,
    distinct_frames,
    key_stride,
    read_duplicates,
)
from virnucpro_tui.core.translation import Frame

STRIDE = key_stride(60)


def frame(i: int, nucleotide: str, protein: str = "MK") -> Frame:
    return Frame(f"r{i}_chunk_1F1", nucleotide, protein)


def table(tmp_path: Path, capacity: int = 1 << 16) -> FrameTable:
    return FrameTable(tmp_path / ".keys.partial", STRIDE, capacity)


def test_ordinals_follow_first_appearance_and_duplicates_point_back(tmp_path: Path) -> None:
    t = table(tmp_path)
    seqs = ["ACGTACG", "TTTTAAA", "ACGTACG", "GGGCCCA", "TTTTAAA", "ACGTACG"]
    got = [t.add(frame(i, s)) for i, s in enumerate(seqs)]
    assert got == [(0, True), (1, True), (0, False), (2, True), (1, False), (0, False)]
    assert (t.distinct, t.duplicates) == (3, 3)


def test_same_nucleotide_with_another_protein_is_another_frame(tmp_path: Path) -> None:
    """The key is the pair: the published translation drops codons with N, so one nucleotide
    slice can come with different proteins, and the lengths are part of the key."""
    t = table(tmp_path)
    assert t.add(frame(0, "ACGTAC", "MK"))[1]
    assert t.add(frame(1, "ACGTAC", "MKV"))[1]
    assert t.add(frame(2, "ACGTACM", "K"))[1]  # same bytes concatenated, other split
    assert t.add(frame(3, "ACGTAC", "MK")) == (0, False)


def test_a_digest_collision_is_caught_by_the_full_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dedup, "key_digest", lambda _key: 7)  # every key collides
    t = table(tmp_path, capacity=8)
    seqs = [f"ACGT{'A' * i}" for i in range(40)]
    assert [t.add(frame(i, s)) for i, s in enumerate(seqs)] == [(i, True) for i in range(40)]
    assert [t.add(frame(99, s)) for s in reversed(seqs)] == [
        (i, False) for i in reversed(range(40))
    ]


def test_growth_and_the_key_log_on_disk_agree_with_a_dictionary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dedup, "FLUSH_BYTES", 4 * STRIDE)  # keys go to disk every 4 frames
    rng = random.Random(5)
    pool = ["".join(rng.choices("ACGT", k=rng.randint(20, 60))) for _ in range(3000)]
    t = table(tmp_path, capacity=4)  # doubles ten times
    reference: dict[str, int] = {}
    for i in range(12_000):
        seq = rng.choice(pool)
        new = seq not in reference
        expected = reference.setdefault(seq, len(reference))
        assert t.add(frame(i, seq)) == (expected, new)
    assert t.distinct == len(reference) and t.duplicates == 12_000 - len(reference)
    assert (tmp_path / ".keys.partial").stat().st_size >= (t.distinct - 4) * STRIDE


def test_memory_is_a_few_bytes_per_distinct_frame(tmp_path: Path) -> None:
    t = table(tmp_path, capacity=16)
    for i in range(50_000):
        t.add(frame(i, f"ACGT{i:08d}"))
    # 4-byte slots at most 70% full and 8-byte digests in 8 MiB blocks: the first block
    # dominates here; at scale about 18 bytes a frame (docs/benchmarks.md: ten million frames)
    assert t.nbytes <= (1 << 17) * 4 + (1 << 20) * 8


def test_a_key_longer_than_the_stride_is_never_shared(tmp_path: Path) -> None:
    t = FrameTable(tmp_path / ".keys.partial", 16)
    long = "ACGT" * 10
    assert t.add(frame(0, long)) == (0, True)
    assert t.add(frame(1, long)) == (1, True)
    assert t.add(frame(2, "ACG")) == (2, True)
    assert t.add(frame(3, "ACG")) == (2, False)


def test_close_removes_the_key_log(tmp_path: Path) -> None:
    t = table(tmp_path)
    t.add(frame(0, "ACGT"))
    t.close()
    assert not list(tmp_path.iterdir())


def test_distinct_frames_lists_the_others_in_the_duplicates_file(tmp_path: Path) -> None:
    frames = [frame(i, s) for i, s in enumerate(["AAA", "CCC", "AAA", "GGG", "CCC"])]
    out = io.StringIO()
    kept = list(distinct_frames(frames, table(tmp_path), out))
    assert [f.id for f in kept] == [frames[0].id, frames[1].id, frames[3].id]
    path = tmp_path / "duplicates.tsv"
    path.write_text(out.getvalue())
    assert list(read_duplicates(path)) == [
        Duplicate(2, 0, frames[2].id),
        Duplicate(4, 1, frames[4].id),
    ]
    out = io.StringIO()
    assert list(distinct_frames(frames, None, out)) == frames and out.getvalue() == ""
    assert list(read_duplicates(tmp_path / "absent.tsv")) == []


def test_score_store_gives_back_the_exact_float32_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "BLOCK_BITS", 3)  # several blocks
    store = ScoreStore()
    values = np.random.default_rng(1).random((50, 2)).astype(np.float32)
    for p_others, p_virus in values:
        store.append(p_others, p_virus)
    assert [store.get(i) for i in range(50)] == [tuple(v) for v in values]
    with pytest.raises(IndexError):
        store.get(50)
