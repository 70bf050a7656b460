"""`virnucpro-tui bench --tiny` runs the whole benchmark on the CPU, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REQUIRED = (
    "esm_proteins_per_s",
    "dnabert_frames_per_s",
    "pipeline_frames_per_s",
    "baseline_frames_per_s",
    "speedup_vs_published",
    "esm_mfu",
    "model_load_s_first",
    "model_load_s_warm",
)


def test_bench_tiny_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, "-m", "virnucpro_tui", "bench", "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
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
    assert 0 < data["esm_mfu"] < 1.5
    assert data["prepare_chunks_per_s"] > 1000
    for precision in ("fp16", "bf16"):
        assert data["fidelity"][precision]["esm_cosine_min"] > 0.99
    # one table with every measure, then the JSON
    assert "ESM-2 3B proteins/s" in r.stdout and "speed-up vs published settings" in r.stdout
