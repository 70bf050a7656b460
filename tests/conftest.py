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
