from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"


def _reference_dir() -> Path:
    env = os.environ.get("VIRNUCPRO_REFERENCE_DATA")
    for candidate in filter(
        None,
        [env, ROOT.parent / "shared" / "reference-data", ROOT / "tests" / "data" / "reference"],
    ):
        if (Path(candidate) / "test_with_orfs.fa").exists():
            return Path(candidate)
    raise RuntimeError("reference data not found: set VIRNUCPRO_REFERENCE_DATA")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _reference_dir()


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory):
    """Demo models built once per test session into a private directory."""
    from virnucpro_tui.models.demo import ensure_demo_models

    root = tmp_path_factory.mktemp("demo-models")
    os.environ["VIRNUCPRO_TUI_DEMO_DIR"] = str(root)
    return ensure_demo_models(root)


LOCAL_BASELINE_ARGS = ["--demo", "--no-ui", "--shard-size", "24", "--devices", "cpu:1"]


@pytest.fixture(scope="session")
def local_baseline(tmp_path_factory: pytest.TempPathFactory, demo_models) -> dict[str, bytes]:
    """The local pool's three output files for both sample inputs (demo models), by
    ``job/file``: what every other backend and placement must reproduce byte for byte."""
    from tests.helpers import SAMPLE_CONTIGS, SAMPLE_READS, cli, cli_env, outputs

    out = tmp_path_factory.mktemp("local") / "run"
    r = cli(
        ["run", str(SAMPLE_CONTIGS), str(SAMPLE_READS), "--out", str(out), *LOCAL_BASELINE_ARGS],
        cli_env(demo_models.root),
    )
    assert r.returncode == 0, r.stderr
    return outputs(out, ["sample_contigs", "sample_reads"])
