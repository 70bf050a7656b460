"""``run --save-features`` and identical frames computed once, end to end: real worker processes
on the CPU with the demo models (docs/features.md, docs/architecture.md#identical-frames-
computed-once).

- The classifier applied to the saved features reproduces prediction_results.txt exactly
  (string-equal rows), with one worker and with two, in both formats, after a kill -9 and resume.
- Deduplication: every row is written, duplicates get identical scores, the results agree with
  ``--no-dedup`` to within batch-composition noise (1e-5 at fp32), fewer frames are computed,
  and a resume after kill -9 gives the bytes of an uninterrupted run.
- Faults: a corrupt per-shard features file is recomputed; a full disk while the features are
  assembled stops the run (exit 1, resumable) with nothing complete-looking left behind.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tests.helpers import (
    OUTPUT_FILES,
    SAMPLE_READS,
    assert_no_live_processes,
    cli,
    cli_env,
    events,
    kill9_run,
    orf,
    worker_pids,
)
from virnucpro_tui.core.features import FEATURES_IDS, FEATURES_PT, FEATURES_SAFETENSORS
from virnucpro_tui.core.outputs import PREDICTION_HEADER, predictions_from_arrays
from virnucpro_tui.core.prepare import prepare_file
from virnucpro_tui.models.classifier import load_classifier, predict_proba

pytestmark = pytest.mark.slow

SMALL = ["--demo", "--no-ui", "--shard-size", "6"]
FEATURES = (FEATURES_PT, FEATURES_SAFETENSORS, FEATURES_IDS)


@pytest.fixture(scope="module")
def dup_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 ORF-rich records, then 6 copies of some of them under other ids, interleaved: about
    a third of the frames are identical to an earlier one."""
    rng = random.Random(11)
    seqs = [orf(3 * rng.randint(150, 330), rng) for _ in range(12)]
    records = [(f"orf{i}", s) for i, s in enumerate(seqs)]
    for n, i in enumerate([3, 0, 7, 3, 11, 5]):
        records.insert(4 + 2 * n, (f"copy{n}_of_orf{i}", seqs[i]))
    path = tmp_path_factory.mktemp("inputs") / "dups.fa"
    path.write_text("".join(f">{rid} synthetic\n{seq}\n" for rid, seq in records))
    return path


def run_args(inp: Path, out: Path, *extra: str, workers: int = 1) -> list[str]:
    return ["run", str(inp), "--out", str(out), *SMALL, "--devices", f"cpu:{workers}", *extra]


def finished(out: Path) -> dict[str, bytes]:
    """Every final file of a one-input run (outputs and features), as bytes."""
    names = (*OUTPUT_FILES, *FEATURES)
    return {n: (out / n).read_bytes() for n in names if (out / n).exists()}


def job_done(out: Path) -> dict[str, Any]:
    return [e for e in events(out) if e["type"] == "job_done"][-1]


def session_events(out: Path, session: int) -> list[dict[str, Any]]:
    ev = events(out)
    starts = [i for i, e in enumerate(ev) if e["type"] == "run_started"]
    end = starts[session + 1] if session + 1 < len(starts) else len(ev)
    return ev[starts[session] : end]


def saved_features(out: Path) -> tuple[list[str], torch.Tensor]:
    if (out / FEATURES_PT).exists():
        loaded = torch.load(out / FEATURES_PT, weights_only=True)
        return loaded["ids"], loaded["data"]
    ids = (out / FEATURES_IDS).read_text().splitlines()
    return ids, torch.from_numpy(load_file(out / FEATURES_SAFETENSORS)["data"])


def assert_features_reproduce_the_scores(out: Path, demo_models) -> None:
    """models.classifier.predict_proba on the saved features gives prediction_results.txt."""
    ids, data = saved_features(out)
    probs = predict_proba(load_classifier(demo_models.classifier_500), data).numpy()
    rows = "".join(p.row() for p in predictions_from_arrays(ids, probs))
    assert PREDICTION_HEADER + rows == (out / "prediction_results.txt").read_text()


def frame_keys(path: Path) -> dict[str, tuple[str, str]]:
    return {
        f.id: (f.nucleotide, f.protein) for rec in prepare_file(path, 500) for f in rec.all_frames()
    }


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, demo_env, dup_input: Path
) -> dict[str, bytes]:
    """An uninterrupted run with deduplication and saved features (.pt)."""
    out = tmp_path_factory.mktemp("baseline") / "run"
    r = cli(run_args(dup_input, out, "--save-features"), demo_env)
    assert r.returncode == 0, r.stderr
    return finished(out)


# -- features reproduce the scores ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "fmt"), [(1, "pt"), (2, "pt"), (1, "safetensors")], ids=["1-pt", "2-pt", "1-st"]
)
def test_the_classifier_on_saved_features_reproduces_prediction_results(
    tmp_path: Path, demo_env, demo_models, dup_input: Path, workers: int, fmt: str
) -> None:
    out = tmp_path / "run"
    # a format alone implies --save-features (the safetensors case gives only the format)
    extra = (
        ("--features-format", fmt)
        if fmt == "safetensors"
        else ("--save-features", "--features-format", fmt)
    )
    r = cli(run_args(dup_input, out, *extra, workers=workers), demo_env)
    assert r.returncode == 0, r.stderr
    assert_features_reproduce_the_scores(out, demo_models)
    ids, data = saved_features(out)
    frames = (out / "prediction_results.txt").read_text().count("\n") - 1
    assert len(ids) == frames == data.shape[0] and data.shape[1] == 128  # demo: 64 + 64
    done = job_done(out)
    path = out / (FEATURES_PT if fmt == "pt" else FEATURES_SAFETENSORS)
    assert done["features_path"] == str(path)
    on_disk = path.stat().st_size + (0 if fmt == "pt" else (out / FEATURES_IDS).stat().st_size)
    assert done["features_bytes"] == on_disk
    assert done["outputs"][path.name] == str(path)
    assert f"features: {path} (" in r.stderr  # the summary names them with their size
    if workers == 2:
        assert len({e["worker"] for e in events(out) if e["type"] == "shard_done"}) == 2
    # with deduplication, a duplicate's row is its source's row
    keys = frame_keys(dup_input)
    first: dict[tuple[str, str], int] = {}
    for i, frame_id in enumerate(ids):
        source = first.setdefault(keys[frame_id], i)
        assert torch.equal(data[i], data[source])


# -- deduplication --------------------------------------------------------------------------------


def test_dedup_computes_each_distinct_frame_once_and_agrees_with_no_dedup(
    tmp_path: Path, demo_env, dup_input: Path, baseline: dict[str, bytes]
) -> None:
    plain = tmp_path / "plain"
    r = cli(run_args(dup_input, plain, "--no-dedup"), demo_env)
    assert r.returncode == 0, r.stderr
    dedup = tmp_path / "dedup"
    r = cli(run_args(dup_input, dedup), demo_env)
    assert r.returncode == 0, r.stderr

    keys = frame_keys(dup_input)
    expected_dups = len(keys) - len(set(keys.values()))
    assert expected_dups >= 10
    done, plain_done = job_done(dedup), job_done(plain)
    assert (done["frames"], done["duplicate_frames"]) == (len(keys), expected_dups)
    assert (plain_done["frames"], plain_done["duplicate_frames"]) == (len(keys), 0)
    computed = sum(e["frames"] for e in events(dedup) if e["type"] == "shard_done")
    assert computed == len(keys) - expected_dups
    prepared = [e for e in events(dedup) if e["type"] == "job_prepared" and e["done"]][-1]
    assert prepared["duplicate_frames"] == expected_dups
    assert f"{expected_dups} identical frames reuse an earlier result" in r.stderr

    rows = [
        line.split("\t") for line in (dedup / "prediction_results.txt").read_text().splitlines()
    ]
    plain_rows = [
        line.split("\t") for line in (plain / "prediction_results.txt").read_text().splitlines()
    ]
    assert [row[0] for row in rows] == [row[0] for row in plain_rows]  # every row, same order
    scores = np.array([[float(x) for x in row[2:]] for row in rows[1:]])
    plain_scores = np.array([[float(x) for x in row[2:]] for row in plain_rows[1:]])
    assert np.abs(scores - plain_scores).max() <= 1e-5
    by_key: dict[tuple[str, str], list[str]] = {}
    for row in rows[1:]:
        by_key.setdefault(keys[row[0]], []).append("\t".join(row[1:]))
    assert all(len(set(v)) == 1 for v in by_key.values())  # duplicates: identical scores
    # the dedup run with saved features wrote the same rows
    assert (dedup / "prediction_results.txt").read_bytes() == baseline["prediction_results.txt"]


def test_a_resume_with_another_dedup_setting_is_refused(
    tmp_path: Path, demo_env, dup_input: Path
) -> None:
    out = tmp_path / "run"
    assert cli(run_args(dup_input, out), demo_env).returncode == 0
    r = cli(run_args(dup_input, out, "--no-dedup"), demo_env)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "dedup was True, now False" in last and "--restart" in last, r.stderr


# -- kill -9 and resume ----------------------------------------------------------------------------


def test_kill9_mid_run_with_features_then_resume_gives_the_same_bytes(
    tmp_path: Path, demo_env, demo_models, dup_input: Path, baseline: dict[str, bytes]
) -> None:
    out = tmp_path / "run"
    slow = cli_env(demo_models.root, {"sleep_per_batch_s": 0.3})
    kill9_run(run_args(dup_input, out, "--save-features"), slow, out, after_shards=1)
    assert not [n for n in (*OUTPUT_FILES, FEATURES_PT) if (out / n).exists()]
    done = {e["shard"] for e in events(out) if e["type"] == "shard_done"}
    assert done and all(
        (out / "shards" / "dups" / f"{i:06d}.features.safetensors").exists() for i in done
    )

    r = cli(run_args(dup_input, out, "--save-features"), demo_env)
    assert r.returncode == 0, r.stderr
    second = session_events(out, 1)
    skipped = {e["shard"] for e in second if e["type"] == "shard_skipped"}
    assert skipped == done, "nothing finished is recomputed"
    prepared = [e for e in second if e["type"] == "job_prepared" and e["done"]]
    assert len(done) < prepared[-1]["shards_total"], "the kill came mid-run"
    assert finished(out) == baseline
    assert_features_reproduce_the_scores(out, demo_models)


# -- faults -------------------------------------------------------------------------------------


def test_a_corrupt_shard_features_file_is_detected_and_the_shard_recomputed(
    tmp_path: Path, demo_env, demo_models, dup_input: Path, baseline: dict[str, bytes]
) -> None:
    out = tmp_path / "run"
    assert cli(run_args(dup_input, out, "--save-features"), demo_env).returncode == 0
    damaged = out / "shards" / "dups" / "000001.features.safetensors"
    raw = bytearray(damaged.read_bytes())
    raw[-3] ^= 0x10
    damaged.write_bytes(bytes(raw))

    r = cli(run_args(dup_input, out, "--save-features"), demo_env)
    assert r.returncode == 0, r.stderr
    second = session_events(out, 1)
    warnings = [e for e in second if e["type"] == "warning" and e.get("shard") == 1]
    assert warnings and str(damaged) in warnings[0]["message"]
    assert "checksum mismatch" in warnings[0]["message"]
    assert [e["shard"] for e in second if e["type"] == "shard_done"] == [1]
    assert finished(out) == baseline


def test_disk_full_while_assembling_features_stops_resumably_and_leaves_nothing(
    tmp_path: Path, demo_env, demo_models, dup_input: Path, baseline: dict[str, bytes]
) -> None:
    out = tmp_path / "run"
    full = cli_env(demo_models.root, {"enospc_in_features": True})
    r = cli(run_args(dup_input, out, "--save-features"), full)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("virnucpro-tui: error: ") and "No space left on device" in last
    assert "final outputs" in last and "resumable" in last
    assert not [n for n in (*OUTPUT_FILES, *FEATURES) if (out / n).exists()]
    assert not list(out.rglob(".*.partial")), "no temporary file is left"
    assert_no_live_processes(worker_pids(out))

    r = cli(run_args(dup_input, out, "--save-features"), demo_env)
    assert r.returncode == 0, r.stderr
    assert finished(out) == baseline


def test_each_input_of_a_run_gets_its_own_features(
    tmp_path: Path, demo_env, demo_models, dup_input: Path
) -> None:
    out = tmp_path / "run"
    args = ["run", str(dup_input), str(SAMPLE_READS), "--out", str(out), *SMALL]
    r = cli([*args, "--devices", "cpu:2", "--save-features"], demo_env)
    assert r.returncode == 0, r.stderr
    for job in ("dups", "sample_reads"):
        assert_features_reproduce_the_scores(out / job, demo_models)
        assert job_done_of(out, job)["features_path"] == str(out / job / FEATURES_PT)


def job_done_of(out: Path, job: str) -> dict[str, Any]:
    return next(e for e in events(out) if e["type"] == "job_done" and e["job"] == job)
