"""`virnucpro-tui bench --tiny` runs the whole benchmark on the CPU, so it cannot rot; its output
says what it measured (tiny shapes, no GPU targets) and it leaves no temporary files behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REQUIRED = (
    "esm_proteins_per_s",
    "dnabert_frames_per_s",
    "pipeline_frames_per_s",
    "baseline_frames_per_s",
    "speedup_vs_published",
    "esm_mfu",
    "model_load_s_first",
    "model_load_s_warm",
    "first_shard_done_s_cold",
    "first_shard_done_s_warm",
    "command_first_shard_done_s_warm",
    "command_first_shard_done_s_warm_no_standby",
)

pytestmark = pytest.mark.slow


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), **extra}


def _bench(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virnucpro_tui", "bench", "--tiny", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_bench_tiny_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    scratch = tmp_path / "tmp"
    r = _bench(["--json", str(out)], _env(scratch, VIRNUCPRO_TUI_ESM_ATTENTION="cudnn"))
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["environment"]["VIRNUCPRO_TUI_ESM_ATTENTION"] == "cudnn"  # a lever, recorded
    for key in REQUIRED:
        assert isinstance(data[key], (int, float)), key
    assert data["esm_proteins_per_s"] > 0 and data["dnabert_frames_per_s"] > 0
    # every 500-bp ORF-rich record keeps at least its forward frame
    assert data["pipeline_frames"] >= data["shapes"]["pipeline_frames"]
    assert data["pipeline_exit_code"] == 0
    assert data["model_load_s_warm"] == 0  # the second job reuses the warm pool
    assert data["model_load_s_first"] > 0
    assert (
        abs(
            data["speedup_vs_published"]
            - data["pipeline_frames_per_s"] / data["baseline_frames_per_s"]
        )
        < 1e-9
    )
    assert 0 < data["esm_mfu"] <= 1  # the CPU peak is the best of several large products
    assert data["prepare_chunks_per_s"] > 1000
    assert data["python_bytecode_cache"] is (not os.environ.get("PYTHONDONTWRITEBYTECODE"))
    for precision in ("fp16", "bf16"):
        assert data["fidelity"][precision]["esm_cosine_min"] > 0.99
        assert data["fidelity"][precision]["label_flips"] >= 0
        assert (
            0
            <= data["fidelity"][precision]["score_abs_diff_p99"]
            <= (data["fidelity"][precision]["score_abs_diff_max"])
        )
    # the shards' GPU-synchronised stage seconds add up to the shards' seconds
    assert 0.95 <= data["stage_seconds_per_frame"]["share_of_shard_seconds"] <= 1.001
    assert data["first_shard_start_s_cold"] <= data["first_shard_done_s_cold"]
    # the real `run` command, launched in a fresh interpreter, with standbys and without
    # ... and with every start-up lever named, on a cache of their own
    assert list(data["command_warm"]) == ["standby", "no_standby", "levers_cold", "levers"]
    assert (
        data["command_first_shard_done_s_warm_levers"]
        == (data["command_warm"]["levers"]["first_shard_done_s"])
    )
    assert (
        data["command_first_shard_done_s_cold_levers"]
        == (data["command_warm"]["levers_cold"]["first_shard_done_s"])
    )
    for command in data["command_warm"].values():
        assert 0 < command["model_load_s"] <= command["first_shard_start_s"]
        assert command["first_shard_start_s"] <= command["first_shard_done_s"] <= command["wall_s"]
    # one table, labelled as tiny shapes: no 3B name, no GPU target; no JSON on stdout
    assert "tiny ESM-2 (2 layers, d 64) proteins/s" in r.stdout
    assert "speed-up vs published settings" in r.stdout
    assert "3B" not in r.stdout and "3B" not in r.stderr
    assert "tiny shapes on the CPU" in r.stdout.splitlines()[0]
    # CPU figures are not labelled as a GPU's
    assert "whole pipeline frames/s with one CPU worker (pool)" in r.stdout
    assert "GPU" not in r.stdout
    for line in r.stdout.splitlines()[2:]:
        if "prepare" in line or "measured matmul" in line or ":" in line:
            continue
        assert line.rstrip().endswith("-"), line  # the target column is empty
    assert "{" not in r.stdout
    assert "matmul peak 0 " not in r.stderr  # the log line shows the same figure as the table
    assert list(scratch.iterdir()) == []  # the temporary folder is gone


def test_bench_json_to_stdout(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    r = _bench(["--json", "-", "--skip", "fidelity,baseline,pipeline"], _env(scratch))
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout)  # stdout is the JSON alone
    assert data["tiny"] is True and data["esm_proteins_per_s"] > 0
    assert "tiny ESM-2" in r.stderr  # the table went to stderr
    assert list(scratch.iterdir()) == []


def test_bench_removes_its_folder_on_error(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    faults = json.dumps({"fail_load": True, "generations": list(range(10))})
    r = _bench(["--skip", "stages,fidelity,baseline"], _env(scratch, VIRNUCPRO_TUI_FAULTS=faults))
    assert r.returncode != 0
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_bench_removes_its_folder_on_interrupt(tmp_path: Path, sig: signal.Signals) -> None:
    scratch = tmp_path / "tmp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "virnucpro_tui", "bench", "--tiny", "--skip", "prepare"],
        env=_env(scratch),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: under a harness started in the background (no job control),
        # SIGINT comes ignored, and Python then never turns it into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 120
        while not list(scratch.glob("virnucpro-bench-*/models")) and time.time() < deadline:
            time.sleep(0.1)
        assert list(scratch.glob("virnucpro-bench-*/models")), "the bench never wrote its models"
        time.sleep(0.5)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole foreground group
        else:
            os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, err[-2000:]  # what the bench was doing when the signal came
    assert list(scratch.iterdir()) == []


def test_the_pipeline_rate_counts_only_shards_begun_after_the_models_ran_compiled() -> None:
    """A cold cache's first shards run uncompiled while the models compile beside: the steady
    rate leaves them out (here 2 s uncompiled shards, then 1 s compiled ones)."""
    from virnucpro_tui.measure.bench import pipeline_metrics

    def shard(end: float, seconds: float) -> dict[str, object]:
        return {"type": "shard_done", "job": "measured", "worker": 0, "ts": end,
                "seconds": seconds, "frames": 100, "stage_seconds": {}}  # fmt: skip

    events = [
        {"type": "job_started", "job": "measured", "ts": 0.0},
        shard(2.0, 2.0),
        shard(4.0, 2.0),
        {"type": "model_load", "phase": "compile_beside_done", "worker": 0, "ts": 4.5},
        shard(6.0, 2.0),  # began at 4.0, before the switch: uncompiled in part
        shard(7.0, 1.0),
        shard(8.0, 1.0),
        shard(9.0, 1.0),
        {"type": "job_done", "job": "measured", "ts": 9.0, "frames": 600},
    ]
    metrics = pipeline_metrics(events, 0)
    assert metrics["pipeline_frames_per_s"] == 100.0  # 200 frames from 7.0 to 9.0
    without_switch = [e for e in events if e.get("phase") != "compile_beside_done"]
    assert pipeline_metrics(without_switch, 0)["pipeline_frames_per_s"] == 500 / 7
