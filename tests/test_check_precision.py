"""``check-precision``: the sample, the figures, the verdict, and the command on the demo models
on the CPU (scoring in a spawned child), within and outside the thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_CONTIGS, SAMPLE_READS
from virnucpro_tui.cli import main
from virnucpro_tui.measure.check_precision import (
    Target,
    Thresholds,
    compare,
    evenly_spaced,
    input_frames,
    report,
    sample_frames,
)


def test_evenly_spaced() -> None:
    assert evenly_spaced(10, 5) == [1, 3, 5, 7, 9]
    assert evenly_spaced(1_000, 4) == [125, 375, 625, 875]
    assert evenly_spaced(3, 5) == [0, 1, 2]


def test_sample_is_drawn_evenly_across_the_input() -> None:
    frames = list(input_frames(SAMPLE_CONTIGS, 500))
    picked, total = sample_frames(SAMPLE_CONTIGS, 500, 10)
    assert total == len(frames) == 244
    assert picked == [frames[i] for i in evenly_spaced(244, 10)]
    assert picked[0] == frames[12] and picked[-1] == frames[231]
    everything, _ = sample_frames(SAMPLE_CONTIGS, 500, 5_000)
    assert everything == frames


RESULT = {
    "ids": ["a", "b", "c", "d"],
    "p_ref": [0.10, 0.49, 0.51, 0.90],
    "p_test": [0.11, 0.52, 0.51, 0.90],
    "cosine": {"DNABERT-S": [1.0, 0.9999, 0.998], "ESM-2": [0.99, 1.0, 1.0]},
}
TARGET = Target("cpu", None, "the CPU", "bf16", {"DNABERT-S": "bf16", "ESM-2": "bf16"})


def test_figures_of_the_comparison() -> None:
    c = compare(RESULT)
    assert (c.frames, c.flips, c.flipped_ids, c.worst_id) == (4, 1, ["b"], "b")
    assert c.max_delta == pytest.approx(0.03)
    assert c.p99_delta == pytest.approx(0.0294)  # numpy's linear interpolation
    assert c.min_cosine == {"DNABERT-S": 0.998, "ESM-2": 0.99}


def test_verdict_names_what_is_outside() -> None:
    lines, within = report(compare(RESULT), Thresholds(), TARGET)
    assert not within
    rows = {line[:26].strip(): line for line in lines}
    assert rows["label flips"].split()[-1] == "OUTSIDE"  # 25% > 0.1%
    assert "1 (25.00%)" in rows["label flips"]
    assert rows["max |ΔP(virus)|"].endswith("OUTSIDE")
    assert rows["min cosine, DNABERT-S"].endswith(" ok")
    assert rows["min cosine, ESM-2"].endswith("OUTSIDE")
    assert lines[-1] == (
        "verdict: OUTSIDE the thresholds (label flips, max |ΔP(virus)|, p99 |ΔP(virus)|, "
        "min cosine, ESM-2; docs/precision.md#thresholds): do not trust --precision bf16 with "
        "these models and data"
    )
    loose = Thresholds(max_flip_fraction=0.25, max_delta=0.05, max_delta_p99=0.05, min_cosine=0.9)
    lines, within = report(compare(RESULT), loose, TARGET)
    assert within and lines[-1].startswith("verdict: within the thresholds")


# --- the command, end to end on the demo models --------------------------------------------------


def check(capture: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    """Run the command in this process; ``capfd`` also sees the scoring child's stderr."""
    code = main(["check-precision", *args])
    out, err = capture.readouterr()
    return code, out.splitlines(), err.splitlines()


def figures(path: Path) -> dict:
    return json.loads(path.read_text())


# the demo models' scores sit around 0.5 by construction (docs/architecture.md#demo-models), so
# the frames nearest it flip at any precision: the flip limit is loosened to 5%, the others kept
FP16_ON_DEMO = (str(SAMPLE_READS), "--demo", "--precision", "fp16", "--max-flip-fraction", "0.05")


@pytest.mark.slow
def test_demo_models_within_the_thresholds(
    demo_models, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """fp16 keeps the demo models' scores within about 3e-3 of fp32's."""
    code, out, err = check(capfd, *FP16_ON_DEMO, "--json", str(tmp_path / "fp16.json"))
    assert code == 0, err
    assert out[0] == (
        f"check-precision: 101 of 101 frames of {SAMPLE_READS} (drawn evenly), on the CPU; "
        "fp32 against DNABERT-S fp16, ESM-2 fp16; demo models (random weights)"
    )
    assert out[-1] == (
        "verdict: within the thresholds (docs/precision.md#thresholds): on this sample, "
        "DNABERT-S fp16, ESM-2 fp16 give fp32's predictions"
    )
    assert "check-precision: fp16: 101 frames in" in "\n".join(err)
    data = figures(tmp_path / "fp16.json")
    c = data["comparison"]
    assert data["within"] and c["frames"] == 101 and data["frames_total"] == 101
    assert c["flips"] <= 2
    assert 0 < c["p99_delta"] <= c["max_delta"] < 0.01
    assert 0.9999 < min(c["min_cosine"].values()) <= 1.0
    assert data["thresholds"]["max_flip_fraction"] == 0.05


@pytest.mark.slow
def test_demo_models_outside_the_thresholds(
    demo_models, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # bf16 moves the demo scores by ~1.5e-2: outside the default p99 limit (5e-3)
    code, out, err = check(
        capfd, str(SAMPLE_READS), "--demo", "--precision", "bf16", "--frames", "60"
    )
    assert code == 1, err
    assert out[0].startswith("check-precision: 60 of 101 frames of ")
    row = next(line for line in out if line.startswith("p99 |ΔP(virus)|"))
    assert row.endswith("<= 5.00e-03  OUTSIDE")
    assert float(row.split()[2]) > 0.005
    assert "p99 |ΔP(virus)|" in out[-1] and out[-1].startswith("verdict: OUTSIDE the thresholds")
    assert out[-1].endswith("do not trust --precision bf16 with these models and data")

    # a threshold set tighter than fp16 can meet: the cosine rows say so
    code, out, _ = check(capfd, *FP16_ON_DEMO, "--min-cosine", "0.99999999", "--frames", "30")
    assert code == 1
    cos_rows = [line for line in out if line.startswith("min cosine")]
    assert len(cos_rows) == 2 and all(r.endswith("OUTSIDE") for r in cos_rows)


def test_fp8_is_refused_on_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, str(SAMPLE_READS), "--demo", "--precision", "fp8")
    assert code == 2
    assert out == []
    assert err == [
        "virnucpro-tui: error: --precision fp8 needs an NVIDIA GPU of compute capability 8.9 "
        "or newer; on the CPU, check bf16 or fp16"
    ]


def test_auto_on_the_cpu_is_fp32_itself(demo_models, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check(capsys, str(SAMPLE_READS), "--demo", "--device", "cpu")
    assert code == 0
    assert out[-1].startswith(
        "check-precision: on the CPU `run --precision auto` computes in fp32, the reference itself"
    )


def test_bad_input_and_device_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    code, _out, err = check(capsys, str(empty), "--demo", "--precision", "bf16")
    assert code == 2 and err[-1].endswith("input file is empty (0 bytes)")
    code, _out, err = check(capsys, str(SAMPLE_READS), "--demo", "--device", "0,1")
    assert code == 2 and err[-1].endswith("expected auto, cpu or one GPU index")
