"""Saved features as files (core/features.py, core/torch_archive.py) and their assembly with
deduplication (run/assemble.py), without models: per-shard files and their checks, the streamed
``.pt`` read back by ``torch.load(weights_only=True)`` and ``torch.load(mmap=True)``, the
streamed safetensors read back by the safetensors library, bounded memory while streaming,
and an assembly in which duplicates copy their source's scores and feature rows."""

from __future__ import annotations

import os
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file

from virnucpro_tui.core.features import (
    FEATURES_IDS,
    FEATURES_PT,
    FEATURES_SAFETENSORS,
    FeatureRows,
    SafetensorsFeatureWriter,
    ShardFeatures,
    verify_shard_features,
    write_shard_features,
)
from virnucpro_tui.core.outputs import PREDICTION_FILE, Prediction, read_prediction_results
from virnucpro_tui.core.shards import (
    CorruptShardError,
    ShardResult,
    shard_features_path,
    shard_path,
    write_shard_result,
)
from virnucpro_tui.core.torch_archive import ALIGNMENT, PtFeatureWriter, pickle_int
from virnucpro_tui.run import assemble

DIM = 12


def rows(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def ids(n: int, start: int = 0) -> list[str]:
    return [f"seq{i}_chunk_1F1" for i in range(start, start + n)]


# -- per-shard files ------------------------------------------------------------------------


def test_a_shard_features_file_round_trips_and_is_plain_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "000003.features.safetensors"
    data = rows(5)
    write_shard_features(path, "job", 3, ids(5), data)
    np.testing.assert_array_equal(load_file(path)["features"], data)  # the library reads it
    shard = ShardFeatures.open(path, "job", 3)
    shard.verify(ids(5))
    np.testing.assert_array_equal(shard.read_rows(1, 3), data[1:4])
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize("damage", ["flip_a_byte", "truncate", "other_shard", "other_ids"])
def test_a_damaged_or_foreign_shard_features_file_is_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "f.safetensors"
    write_shard_features(path, "job", 3, ids(5), rows(5))
    index, expected = 3, ids(5)
    if damage == "flip_a_byte":
        raw = bytearray(path.read_bytes())
        raw[-7] ^= 0x40
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-4])
    elif damage == "other_shard":
        index = 4
    else:
        expected = ids(5, start=1)
    with pytest.raises(CorruptShardError):
        verify_shard_features(path, "job", index, expected)


# -- the streamed .pt -------------------------------------------------------------------------


def write_pt(out: Path, data: np.ndarray, names: list[str], block: int = 7) -> Path:
    writer = PtFeatureWriter(out, len(names), data.shape[1])
    for start in range(0, len(names), block):
        writer.write(names[start : start + block], data[start : start + block])
    writer.commit()
    return out / FEATURES_PT


def test_the_streamed_pt_loads_like_torch_save_with_weights_only_and_mmap(tmp_path: Path) -> None:
    data, names = rows(1000), [f"{i}_é" for i in ids(1000)]  # non-ASCII ids survive
    path = write_pt(tmp_path, data, names)
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == ["ids", "data"] and loaded["ids"] == names
    assert loaded["data"].dtype == torch.float32 and loaded["data"].shape == (1000, DIM)
    assert torch.equal(loaded["data"], torch.from_numpy(data))
    mapped = torch.load(path, weights_only=True, mmap=True)
    assert torch.equal(mapped["data"], torch.from_numpy(data))
    # the tensor's bytes start aligned inside the file, as torch.save puts them
    reader = torch._C.PyTorchFileReader(str(path))
    assert reader.get_record_offset("data/0") % ALIGNMENT == 0
    assert zipfile.ZipFile(path).testzip() is None  # every CRC-32 is right
    reference = tmp_path / "reference.pt"
    torch.save({"ids": names, "data": torch.from_numpy(data)}, reference)
    assert sorted(reader.get_all_records()) == sorted(
        torch._C.PyTorchFileReader(str(reference)).get_all_records()
    )
    assert not list(tmp_path.glob(".*"))


def test_the_pt_reads_in_the_published_prediction_loader(tmp_path: Path) -> None:
    """The published prediction.py reads merged files with a plain ``torch.load(path)`` and
    indexes ``data_dict['data']`` and ``data_dict['ids']``."""
    data = rows(9)
    data_dict = torch.load(write_pt(tmp_path, data, ids(9)))
    assert data_dict["data"][4].tolist() == data[4].tolist() and data_dict["ids"][4] == ids(9)[4]


def test_an_input_without_frames_has_an_empty_features_file(tmp_path: Path) -> None:
    loaded = torch.load(write_pt(tmp_path, rows(0), []), weights_only=True)
    assert loaded["ids"] == [] and loaded["data"].shape == (0, DIM)


@pytest.mark.parametrize("n", [0, 1, 255, 256, 2**31 - 1, 2**31, 10_000_000 * 3328, -5])
def test_pickled_integers_read_back(n: int) -> None:
    assert pickle.loads(pickle.PROTO + b"\x02" + pickle_int(n) + pickle.STOP) == n


def test_an_aborted_or_short_pt_leaves_nothing(tmp_path: Path) -> None:
    writer = PtFeatureWriter(tmp_path, 10, DIM)
    writer.write(ids(4), rows(4))
    with pytest.raises(ValueError, match="4 feature rows written, 10 expected"):
        writer.commit()
    writer.abort()
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError):  # more rows than promised
        PtFeatureWriter(tmp_path, 2, DIM).write(ids(3), rows(3))


# -- the streamed safetensors --------------------------------------------------------------------


def test_the_streamed_safetensors_and_its_ids_sidecar(tmp_path: Path) -> None:
    data, names = rows(100), ids(100)
    writer = SafetensorsFeatureWriter(tmp_path, 100, DIM)
    for start in range(0, 100, 33):
        writer.write(names[start : start + 33], data[start : start + 33])
    writer.commit()
    with safe_open(str(tmp_path / FEATURES_SAFETENSORS), framework="pt") as fh:
        assert torch.equal(fh.get_tensor("data"), torch.from_numpy(data))
        assert fh.metadata()["ids"] == FEATURES_IDS
    assert (tmp_path / FEATURES_IDS).read_text().splitlines() == names
    assert sorted(p.name for p in tmp_path.iterdir()) == [FEATURES_IDS, FEATURES_SAFETENSORS]


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_streaming_holds_one_block_not_the_features(tmp_path: Path, fmt: str) -> None:
    """20,000 rows of 3,328 values (266 MB) in blocks of 1,024: the writer's Python and NumPy
    allocations stay near one block (13.6 MB), whatever the total."""
    n, dim, block = 20_000, 3328, 1024
    one = rows(block, dim=dim)
    writer = (
        PtFeatureWriter(tmp_path, n, dim)
        if fmt == "pt"
        else SafetensorsFeatureWriter(tmp_path, n, dim)
    )
    tracemalloc.start()
    try:
        for start in range(0, n, block):
            count = min(block, n - start)
            writer.write(ids(count, start), one[:count])
        writer.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * one.nbytes, peak
    path = tmp_path / (FEATURES_PT if fmt == "pt" else FEATURES_SAFETENSORS)
    assert path.stat().st_size > n * dim * 4


# -- assembly: duplicates copy their source's scores and features ---------------------------------


def write_dedup_job(shards: Path, shard_size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A job of 3 records and 11 frames, 4 of them duplicates of earlier frames, with the shard
    results and features of its 7 distinct frames; returns the expected per-frame ids, scores
    and features."""
    job = shards / "job"
    job.mkdir(parents=True)
    # frame positions 0..10; sources: position -> ordinal of the computed frame it copies
    sources = [0, 1, 0, 2, 3, 1, 4, 5, 2, 6, 6]
    names = [f"r{r}_chunk_{c}F1" for r, c in [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2),
                                              (1, 3), (2, 1), (2, 2), (2, 3), (2, 4)]]  # fmt: skip
    (job / assemble.RECORDS_FILE).write_text(
        "r0\t2000\t4\t4\t4\nr1\t1500\t3\t3\t3\nr2\t2000\t4\t4\t4\n"
    )
    computed = [i for i, o in enumerate(sources) if o not in sources[:i]]
    scores = np.random.default_rng(3).random((7, 1)).astype(np.float32)
    probs = np.hstack([1 - scores, scores]).astype(np.float32)
    feats = rows(7, seed=4)
    with (job / "duplicates.tsv").open("w") as fh:
        for position, ordinal in enumerate(sources):
            if position not in computed:
                fh.write(f"{position}\t{ordinal}\t{names[position]}\n")
    computed_ids = [names[i] for i in computed]
    for index, start in enumerate(range(0, 7, shard_size)):
        part = slice(start, start + shard_size)
        write_shard_result(
            shard_path(shards, "job", index),
            ShardResult("job", index, computed_ids[part], probs[part]),
        )
        write_shard_features(
            shard_features_path(shards, "job", index), "job", index, computed_ids[part], feats[part]
        )
    return names, probs[sources], feats[sources]


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_assembly_fans_out_duplicates_into_every_row_and_feature(tmp_path: Path, fmt: str) -> None:
    names, probs, feats = write_dedup_job(tmp_path / "shards", shard_size=3)
    totals = assemble.assemble_job(
        tmp_path / "shards", "job", 3, tmp_path / "out",
        features=assemble.FeatureRequest(fmt, shard_size=3),
    )  # fmt: skip
    preds = read_prediction_results(tmp_path / "out" / PREDICTION_FILE)
    assert [p.frame_id for p in preds] == names
    assert preds == [Prediction(n, p[0], p[1]) for n, p in zip(names, probs, strict=True)]
    assert (totals.frames, totals.duplicate_frames) == (11, 4)
    if fmt == "pt":
        loaded = torch.load(tmp_path / "out" / FEATURES_PT, weights_only=True)
        got_ids, got = loaded["ids"], loaded["data"].numpy()
    else:
        got_ids = (tmp_path / "out" / FEATURES_IDS).read_text().splitlines()
        got = load_file(tmp_path / "out" / FEATURES_SAFETENSORS)["data"]
    assert got_ids == names
    np.testing.assert_array_equal(got, feats)
    assert totals.features_path == str(
        tmp_path / "out" / (FEATURES_PT if fmt == "pt" else FEATURES_SAFETENSORS)
    )
    assert totals.features_bytes == sum(
        os.path.getsize(p) for n, p in totals.outputs.items() if n.startswith("prediction_features")
    )


def test_a_corrupt_shard_features_file_fails_the_assembly_with_nothing_in_place(
    tmp_path: Path,
) -> None:
    write_dedup_job(tmp_path / "shards", shard_size=3)
    path = shard_features_path(tmp_path / "shards", "job", 1)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptShardError, match="000001.features.safetensors: checksum"):
        assemble.assemble_job(
            tmp_path / "shards", "job", 3, tmp_path / "out",
            features=assemble.FeatureRequest("pt", shard_size=3),
        )  # fmt: skip
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_feature_rows_refuse_a_row_taken_before_it_is_computed(tmp_path: Path) -> None:
    write_dedup_job(tmp_path / "shards", shard_size=3)
    table = FeatureRows(tmp_path / "shards", "job", 3, 3)
    with pytest.raises(CorruptShardError, match="out of order"):
        table.take(["x"], [2])
    table.close()


def test_a_job_without_frames_gets_an_empty_features_file(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    (shards / "job").mkdir(parents=True)
    (shards / "job" / assemble.RECORDS_FILE).write_text("noncoding\t400\t1\t0\t0\n")
    totals = assemble.assemble_job(
        shards, "job", 0, tmp_path / "out", features=assemble.FeatureRequest("pt", shard_size=3)
    )
    loaded = torch.load(tmp_path / "out" / FEATURES_PT, weights_only=True)
    assert loaded["ids"] == [] and loaded["data"].shape == (0, 3328)
    assert (
        totals.frames == 0
        and totals.features_bytes == (tmp_path / "out" / FEATURES_PT).stat().st_size
    )
