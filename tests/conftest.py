"""Fixtures shared by every tier, and the order and grouping of the tests.

Tiers (docs/architecture.md#tests): unmarked tests are unit tests; ``ui`` tests drive a real
Textual app in this process; ``slow`` tests start real processes, runs or Ray clusters. The
Ray tests run first, then the other slow ones, so that under pytest-xdist (``make test``) the
longest start at once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    ROOT,
    SAMPLE_JOBS,
    cli,
    cli_env,
    outputs,
    private_ray_dir,
    sample_run,
)
from virnucpro_tui.models.demo import DemoModels


def _reference_dir() -> Path:
    env = os.environ.get("VIRNUCPRO_REFERENCE_DATA")
    for candidate in filter(
        None,
        [env, ROOT.parent / "shared" / "reference-data", ROOT / "tests" / "data" / "reference"],
    ):
        if (Path(candidate) / "test_with_orfs.fa").exists():
            return Path(candidate)
    raise RuntimeError("reference data not found: set VIRNUCPRO_REFERENCE_DATA")


# -- order and distribution -----------------------------------------------------------------------
RAY_FILES = ("tests/test_ray.py::", "tests/test_ray_cluster.py::")


def _tier(item: pytest.Item) -> int:
    if item.nodeid.startswith(RAY_FILES):
        return 0
    if item.get_closest_marker("slow"):
        return 1
    return 2 if item.get_closest_marker("ui") else 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_tier)  # stable: each tier keeps the files' order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist, tests are handed out one by one, except the Ray files' tests: one
    worker runs them all, so that one Ray cluster at a time runs on the machine. (Not the
    ``xdist_group`` mark: pytest-xdist 3.8 ignores it with pytest 9.2, pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    class OneRayWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if nodeid.startswith(RAY_FILES) else nodeid

    return OneRayWorker(config, log)


# -- the process's umask ---------------------------------------------------------------------------
@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """This process's umask set to the parameter for the test (no threads of ours create files
    meanwhile), restored after."""
    mask: int = request.param
    saved = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(saved)


# -- async tests -----------------------------------------------------------------------------------
@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests (the Pilot tests) run on asyncio, Textual's loop."""
    return "asyncio"


# -- the session's private directories -------------------------------------------------------------
def _shared_tmp(factory: pytest.TempPathFactory) -> Path:
    """This session's temporary root, shared by all pytest-xdist workers of one run."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$XDG_CACHE_HOME for the session (the model hash cache, the compile cache): the tests,
    and the commands they start, never write the user's ~/.cache."""
    path = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _reference_dir()


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> DemoModels:
    """Demo models built once per test run into a private directory (built once for all
    pytest-xdist workers: ``ensure_demo_models`` is safe when processes race)."""
    from virnucpro_tui.models.demo import ensure_demo_models

    root = _shared_tmp(tmp_path_factory) / "demo-models"
    os.environ["VIRNUCPRO_TUI_DEMO_DIR"] = str(root)
    return ensure_demo_models(root)


@pytest.fixture(scope="session")
def demo_env(demo_models: DemoModels) -> dict[str, str]:
    """The environment of a command run with ``--demo`` (no faults injected)."""
    return cli_env(demo_models.root)


@pytest.fixture(scope="session")
def local_baseline(
    tmp_path_factory: pytest.TempPathFactory, demo_env: dict[str, str]
) -> dict[str, bytes]:
    """The local pool's three output files for both sample inputs (demo models), by
    ``job/file``: what every other backend and placement must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("local") / "run"
    r = cli(sample_run(out, "--devices", "cpu:1"), demo_env)
    assert r.returncode == 0, r.stderr
    return outputs(out, SAMPLE_JOBS)


# -- Ray -------------------------------------------------------------------------------------------
@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A private Ray temp directory for one test."""
    path = private_ray_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
