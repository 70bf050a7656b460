"""The persistent pool, its events, supervision and the resumable run directory, with real
worker processes on CPU and the demo models (docs/architecture.md, docs/events.md, docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import (
    DEMO_RUN,
    SAMPLE_JOBS,
    SAMPLE_READS,
    SAMPLE_SHARDS,
    assert_no_live_processes,
    cli,
    cli_env,
    events,
    kill9_run,
    kill_tree,
    outputs,
    sample_run,
    start_cli,
    started_during,
    wait_for_event,
    worker_pids,
)
from virnucpro_tui.core.outputs import read_prediction_results

pytestmark = pytest.mark.slow


def test_two_workers_two_inputs_share_one_warm_pool(
    tmp_path: Path, demo_env, local_baseline
) -> None:
    out = tmp_path / "run"
    r = cli(sample_run(out, "--devices", "cpu:2", "--clear-cache-every", "2"), demo_env)
    assert r.returncode == 0, r.stderr
    ev = events(out)
    assert all({"v", "ts", "type", "worker", "job"} <= e.keys() for e in ev)
    loads = sorted(
        (e["worker"], e["model"]) for e in ev if e["type"] == "model_load" and e["phase"] == "done"
    )
    # two inputs, two workers: each worker loads each model exactly once
    assert loads == sorted((w, m) for w in (0, 1) for m in ("classifier", "dnabert", "esm"))
    done = [e for e in ev if e["type"] == "shard_done"]
    assert {e["worker"] for e in done} == {0, 1}
    assert sorted((e["job"], e["shard"]) for e in done) == SAMPLE_SHARDS
    mem = [e for e in ev if e["type"] == "gpu_memory"]
    assert mem and all(
        e["kind"] == "cpu" and e["total"] > e["free"] > 0 and e["peak"] >= e["allocated"] > 0
        for e in mem
    )
    clears = [e for e in ev if e["type"] == "cache_cleared"]
    assert clears and all(
        e["reason"] == "periodic" and e["reserved_before"] >= 0 and e["bytes_freed"] >= 0
        for e in clears
    )
    assert any(e["type"] == "heartbeat" for e in ev)
    progress = [e for e in ev if e["type"] == "progress" and e["stage"] in ("dnabert", "esm")]
    assert progress and all(0 <= e["frames_done"] <= e["frames_total"] for e in progress)
    assert [e["job"] for e in ev if e["type"] == "job_done"] == SAMPLE_JOBS or sorted(
        e["job"] for e in ev if e["type"] == "job_done"
    ) == SAMPLE_JOBS
    assert outputs(out, SAMPLE_JOBS) == local_baseline
    # the per-sequence summary and provenance are there, and say these are demo scores
    assert (
        "not biological predictions" in (out / "sample_contigs" / "NOTICE.txt").read_text().lower()
    )
    assert '"demo": true' in (out / "sample_contigs" / "provenance.json").read_text()


def test_no_persistent_reloads_models_per_input(tmp_path: Path, demo_env, local_baseline) -> None:
    out = tmp_path / "run"
    r = cli(sample_run(out, "--devices", "cpu:1", "--no-persistent"), demo_env)
    assert r.returncode == 0, r.stderr
    loads = [e for e in events(out) if e["type"] == "model_load" and e["phase"] == "done"]
    assert len(loads) == 6  # three models, reloaded for the second input
    assert outputs(out, SAMPLE_JOBS) == local_baseline


def test_worker_killed_mid_shard_is_respawned_and_nothing_lost(
    tmp_path: Path, demo_models, local_baseline
) -> None:
    out = tmp_path / "run"
    env = cli_env(demo_models.root, {"sleep_per_batch_s": 0.3, "workers": [0]})
    proc = start_cli(sample_run(out, "--devices", "cpu:2"), env)
    try:
        busy = wait_for_event(
            out,
            lambda e: e["type"] == "progress" and e["worker"] == 0 and e["stage"] == "dnabert",
            proc=proc,
        )
        pid = next(
            e["pid"]
            for e in events(out)
            if e["type"] == "worker_state" and e["worker"] == 0 and e.get("pid")
        )
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=180)
    finally:
        kill_tree(proc)
    assert proc.returncode == 0, proc.stderr.read()
    ev = events(out)
    crashed = [e for e in ev if e["type"] == "worker_state" and e["state"] == "crashed"]
    assert crashed and crashed[0]["worker"] == 0 and "SIGKILL" in crashed[0]["reason"]
    assert any(
        e["type"] == "worker_state" and e["state"] == "restarting" and e["worker"] == 0 for e in ev
    )
    requeued = {(e["job"], e["shard"]) for e in ev if e["type"] == "shard_requeued"}
    # the shard in progress, plus at most the one prefetched behind it (not started yet)
    assert (busy["job"], busy["shard"]) in requeued and len(requeued) <= 2
    assert outputs(out, SAMPLE_JOBS) == local_baseline  # every frame scored exactly once, in order


def test_restart_limit_fails_the_run_clearly(tmp_path: Path, demo_models) -> None:
    out = tmp_path / "run"
    env = cli_env(demo_models.root, {"exit_on_shard": 1, "generations": [0, 1, 2, 3]})
    r = cli(sample_run(out, "--devices", "cpu:1", "--max-restarts", "2"), env)
    assert r.returncode == 1
    assert "restart limit" in r.stderr or "every worker failed" in r.stderr
    assert "Traceback" not in r.stderr
    states = [e["state"] for e in events(out) if e["type"] == "worker_state" and e["worker"] == 0]
    assert states.count("restarting") == 2 and states.count("crashed") == 3
    assert_no_live_processes(worker_pids(out))
    assert not (out / "sample_contigs" / "prediction_results.txt").exists()


def test_hung_worker_is_killed_and_respawned(tmp_path: Path, demo_models, local_baseline) -> None:
    out = tmp_path / "run"
    env = cli_env(demo_models.root, {"hang_on_shard": 2})
    r = cli(sample_run(out, "--devices", "cpu:1", "--hang-timeout", "4"), env)
    assert r.returncode == 0, r.stderr
    crashed = [e for e in events(out) if e["type"] == "worker_state" and e["state"] == "crashed"]
    assert len(crashed) == 1 and "hung" in crashed[0]["reason"]
    assert outputs(out, SAMPLE_JOBS) == local_baseline


def test_a_worker_slow_to_start_is_not_taken_for_hung(tmp_path: Path, demo_models) -> None:
    """Importing torch on a busy node can take longer than --hang-timeout: the worker beats
    while it starts, so it is not killed; only silence counts as a hang."""
    out = tmp_path / "run"
    env = cli_env(demo_models.root, {"slow_start_s": 6.0})
    r = cli(["run", str(SAMPLE_READS), "--out", str(out), "--demo", "--devices", "cpu:1",
             "--hang-timeout", "3"], env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    states = [e["state"] for e in events(out) if e["type"] == "worker_state"]
    assert "crashed" not in states and states[0] == "starting", states
    beats = [e for e in events(out) if e["type"] == "heartbeat"]
    started = next(e["ts"] for e in events(out) if e["type"] == "worker_state")
    assert [b for b in beats if b["ts"] < started + 6.0 and b["state"] == "starting"]


def test_injected_oom_splits_the_batch(tmp_path: Path, demo_models, local_baseline) -> None:
    out = tmp_path / "run"
    env = cli_env(demo_models.root, {"oom_batches": 2})
    r = cli(sample_run(out, "--devices", "cpu:1"), env)
    assert r.returncode == 0, r.stderr
    ooms = [e for e in events(out) if e["type"] == "oom"]
    assert len(ooms) == 2 and all(e["action"] == "split" and e["batch_size"] > 1 for e in ooms)
    ours = read_prediction_results(out / "sample_contigs" / "prediction_results.txt")
    base_path = tmp_path / "base.txt"
    base_path.write_bytes(local_baseline["sample_contigs/prediction_results.txt"])
    ref = read_prediction_results(base_path)
    assert [p.frame_id for p in ours] == [p.frame_id for p in ref]
    np.testing.assert_allclose([p.p_virus for p in ours], [p.p_virus for p in ref], atol=1e-5)


def test_sigterm_stops_cleanly_and_the_rerun_resumes(
    tmp_path: Path, demo_models, demo_env, local_baseline
) -> None:
    out = tmp_path / "run"
    proc = start_cli(
        sample_run(out, "--devices", "cpu:2"), cli_env(demo_models.root, {"sleep_per_batch_s": 0.2})
    )
    try:
        wait_for_event(out, lambda e: e["type"] == "shard_done", proc=proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        kill_tree(proc)
    assert proc.returncode == 130
    assert_no_live_processes(worker_pids(out))
    assert '"status": "interrupted"' in (out / "manifest.json").read_text()
    done_before = {(e["job"], e["shard"]) for e in events(out) if e["type"] == "shard_done"}
    r = cli(sample_run(out, "--devices", "cpu:1"), demo_env)
    assert r.returncode == 0, r.stderr
    skipped = {(e["job"], e["shard"]) for e in events(out) if e["type"] == "shard_skipped"}
    assert skipped == done_before and skipped
    assert outputs(out, SAMPLE_JOBS) == local_baseline


@pytest.mark.parametrize("after_shards", [0, 3, 14])
def test_kill9_of_the_whole_run_then_rerun_is_byte_identical(
    tmp_path: Path, demo_models, demo_env, local_baseline, after_shards: int
) -> None:
    out = tmp_path / "run"
    kill9_run(
        sample_run(out, "--devices", "cpu:2"),
        cli_env(demo_models.root, {"sleep_per_batch_s": 0.05}),
        out,
        after_shards,
    )
    r = cli(sample_run(out, "--devices", "cpu:2"), demo_env)
    assert r.returncode == 0, r.stderr
    assert outputs(out, SAMPLE_JOBS) == local_baseline


def test_orchestrator_killed_alone_leaves_no_orphan_workers(tmp_path: Path, demo_models) -> None:
    out = tmp_path / "run"
    proc = start_cli(
        sample_run(out, "--devices", "cpu:2"), cli_env(demo_models.root, {"sleep_per_batch_s": 0.3})
    )
    try:
        wait_for_event(out, lambda e: e["type"] == "progress", proc=proc)
        pids = worker_pids(out)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert_no_live_processes(pids, timeout=20)
    finally:
        kill_tree(proc)


def test_corrupt_shards_are_detected_and_recomputed(
    tmp_path: Path, demo_env, local_baseline
) -> None:
    out = tmp_path / "run"
    assert cli(sample_run(out, "--devices", "cpu:1"), demo_env).returncode == 0
    truncated = out / "shards" / "sample_contigs" / "000002.tsv"
    truncated.write_bytes(truncated.read_bytes()[:-40])
    tampered = out / "shards" / "sample_reads" / "000001.tsv"
    tampered.write_text(tampered.read_text().replace("\tothers\t", "\tvirus\t", 1))
    for job in SAMPLE_JOBS:
        (out / job / "prediction_results.txt").unlink()
    r = cli(sample_run(out, "--devices", "cpu:1"), demo_env)
    assert r.returncode == 0, r.stderr
    warnings = [e["message"] for e in events(out) if e["type"] == "warning"]
    assert any("checksum" in w and "000002" in w for w in warnings)
    assert any("checksum" in w and "000001" in w for w in warnings)
    assert outputs(out, SAMPLE_JOBS) == local_baseline


def test_a_different_run_in_the_same_directory_is_refused(tmp_path: Path, demo_env) -> None:
    out = tmp_path / "run"
    reads = ["run", str(SAMPLE_READS), "--out", str(out), *DEMO_RUN, "--devices", "cpu:1"]
    assert cli(reads, demo_env).returncode == 0
    before = (out / "prediction_results.txt").read_bytes()
    r = cli([*reads, "--length", "300"], demo_env)
    assert r.returncode == 2
    assert "different run" in r.stderr and "chunk_length" in r.stderr and "--restart" in r.stderr
    assert (out / "prediction_results.txt").read_bytes() == before
    r = cli([*reads, "--length", "300", "--restart"], demo_env)
    assert r.returncode == 0, r.stderr
    assert (out / "prediction_results.txt").read_bytes() != before


def test_a_second_run_on_the_same_out_is_locked_out(tmp_path: Path, demo_models, demo_env) -> None:
    out = tmp_path / "run"
    first = start_cli(
        sample_run(out, "--devices", "cpu:1"), cli_env(demo_models.root, {"sleep_per_batch_s": 0.1})
    )
    try:
        wait_for_event(out, lambda e: e["type"] == "run_started", proc=first)
        r = cli(sample_run(out, "--devices", "cpu:1"), demo_env)
        assert r.returncode == 2 and "in use by another virnucpro-tui run" in r.stderr
        first.wait(timeout=180)
    finally:
        kill_tree(first)
    assert first.returncode == 0
    assert (out / "sample_contigs" / "prediction_results.txt").exists()


def test_pause_starts_no_shard_until_resumed(
    tmp_path: Path, demo_models, local_baseline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pause takes back the prefetched shards: between run_paused and run_resumed no shard
    starts, and exactly the shards that were running finish."""
    from tests.ui.helpers import cli_run_config
    from virnucpro_tui.run.orchestrator import Orchestrator

    monkeypatch.setenv("VIRNUCPRO_TUI_FAULTS", json.dumps({"sleep_per_batch_s": 0.2}))
    out = tmp_path / "run"
    cfg, sinks, backend = cli_run_config(sample_run(out, "--devices", "cpu:2")[1:])
    orchestrator = Orchestrator(cfg, sinks, backend=backend)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(orchestrator.execute()))
    thread.start()
    try:
        wait_for_event(out, lambda e: e["type"] == "shard_done")
        orchestrator.set_paused(True)
        paused = wait_for_event(out, lambda e: e["type"] == "run_paused")
        wait_for_event(
            out,
            lambda e: (
                sum(x["type"] == "shard_done" and x["ts"] >= paused["ts"] for x in events(out))
                >= paused["shards_running"]
            ),
        )
        time.sleep(3)  # a shard that wrongly started would show by now
        orchestrator.set_paused(False)
    finally:
        thread.join(timeout=240)
    assert codes == [0]
    ev = events(out)
    start = next(i for i, e in enumerate(ev) if e["type"] == "run_paused")
    end = next(i for i, e in enumerate(ev) if e["type"] == "run_resumed")
    during = ev[start:end]
    assert 1 <= ev[start]["shards_running"] <= 2
    assert not started_during(ev[:start], during)
    assert sum(e["type"] == "shard_done" for e in during) == ev[start]["shards_running"]
    assert any(e["type"] == "worker_state" and e["state"] == "busy" for e in ev[end:])
    assert outputs(out, SAMPLE_JOBS) == local_baseline  # every frame scored once
