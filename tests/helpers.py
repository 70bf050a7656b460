"""Helpers for tests that run the real command line in real processes, or the orchestrator
in this one on the fake backend."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
import pytest

if TYPE_CHECKING:
    from virnucpro_tui.models.settings import ModelFiles
    from virnucpro_tui.pool.events import Event
    from virnucpro_tui.run.orchestrator import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONTIGS = ROOT / "sample_data" / "sample_contigs.fa"
SAMPLE_READS = ROOT / "sample_data" / "sample_reads.fa.gz"
SAMPLE_JOBS = ["sample_contigs", "sample_reads"]  # the jobs of a run of both sample inputs
SAMPLE_INPUTS = [str(SAMPLE_CONTIGS), str(SAMPLE_READS)]
DEMO_RUN = ["--demo", "--no-ui", "--shard-size", "24"]  # the demo models, 24 frames a shard
SAMPLE_SHARDS = sorted(  # the (job, shard) pairs of both sample inputs at --shard-size 24
    [("sample_contigs", i) for i in range(11)] + [("sample_reads", i) for i in range(5)]
)
OUTPUT_FILES = (
    "prediction_results.txt",
    "prediction_results_highestscore.csv",
    "sequence_summary.tsv",
)
# codons without a stop: a run of them is one open reading frame (frame 1), never cut
ORF_CODONS = ("GCT", "AAA", "CTG", "ATG", "GGC", "TCA", "CCG", "ACG")


def sample_run(out: Path, *extra: str) -> list[str]:
    """``run`` of both sample inputs on the demo models into ``out`` (``SAMPLE_SHARDS``)."""
    return ["run", *SAMPLE_INPUTS, "--out", str(out), *DEMO_RUN, *extra]


def orf(length: int, rng: random.Random) -> str:
    """``length // 3`` random stop-free codons: an ORF in frame 1."""
    return "".join(rng.choice(ORF_CODONS) for _ in range(length // 3))


def one_line(capsys: pytest.CaptureFixture[str], words: Iterable[str] = ()) -> str:
    """The one line the command wrote to stderr (no traceback), holding each of ``words``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def prepare_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, filename: str, words: list[str]
) -> str:
    """``prepare`` of ``data`` saved as ``filename`` exits 2 with one line holding ``words``
    and writes nothing; returns that line."""
    from virnucpro_tui.cli import main

    path = tmp_path / filename
    path.write_bytes(data)
    out = tmp_path / "out"
    assert main(["prepare", str(path), "--length", "500", "--out", str(out)]) == 2
    line = one_line(capsys, words)
    assert not out.exists()
    return line


def cli_env(demo_root: Path, faults: dict[str, Any] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["VIRNUCPRO_TUI_DEMO_DIR"] = str(demo_root)
    env.pop("VIRNUCPRO_TUI_FAULTS", None)
    if faults:
        env["VIRNUCPRO_TUI_FAULTS"] = json.dumps(faults)
    return env


def cli(
    args: list[str], env: dict[str, str], timeout: float = 240, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virnucpro_tui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def start_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "virnucpro_tui", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=cwd,
    )


def start_cli_on_terminal(
    args: list[str], env: dict[str, str], terminal: int, **popen: Any
) -> subprocess.Popen[bytes]:
    """The command line with ``terminal`` (a pty's slave end) as its stdin, stdout and stderr.
    The slave end is closed here: the master end reads EOF once the child closes it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "virnucpro_tui", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        **popen,
    )
    os.close(terminal)
    return proc


def events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def wait_for_event(
    run_dir: Path,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 120,
    proc: subprocess.Popen[str] | None = None,
) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in events(run_dir):
            if predicate(e):
                return e
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process ended ({proc.returncode}) before the event: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.1)
    raise AssertionError("timed out waiting for an event")


def started_during(
    before: list[dict[str, Any]], during: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The busy events in ``during`` that start a shard. A worker still loading the models for
    the shard it took before the pause turns busy on that same shard: that is no new start."""
    last = {e["worker"]: e for e in before if e["type"] == "worker_state"}
    started = []
    for e in during:
        if e["type"] != "worker_state":
            continue
        previous = last.get(e["worker"])
        loading_this = previous is not None and previous["state"] == "loading"
        if e["state"] == "busy" and not loading_this:
            started.append(e)
        last[e["worker"]] = e
    return started


def worker_pids(run_dir: Path) -> set[int]:
    return {e["pid"] for e in events(run_dir) if e["type"] == "worker_state" and e.get("pid")}


def assert_no_live_processes(pids: set[int], timeout: float = 15) -> None:
    deadline = time.time() + timeout
    alive: list[int] = []
    while time.time() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes still alive: {alive}")


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_tree(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill9_run(args: list[str], env: dict[str, str], out: Path, after_shards: int) -> None:
    """Start a run, kill -9 its whole tree once `after_shards` shards are done (or as soon as
    the first job starts, for 0), and check that no worker outlived it."""
    proc = start_cli(args, env)
    try:
        if after_shards:
            wait_for_event(
                out,
                lambda e: (
                    e["type"] == "shard_done"
                    and sum(x["type"] == "shard_done" for x in events(out)) >= after_shards
                ),
                proc=proc,
            )
        else:
            wait_for_event(out, lambda e: e["type"] == "job_started", proc=proc)
    finally:
        kill_tree(proc)
        proc.wait(timeout=30)
    assert_no_live_processes(worker_pids(out))


def outputs(run_dir: Path, jobs: list[str] | None = None) -> dict[str, bytes]:
    dirs = [run_dir / j for j in jobs] if jobs else [run_dir]
    return {f"{d.name}/{name}": (d / name).read_bytes() for d in dirs for name in OUTPUT_FILES}


# -- Ray ------------------------------------------------------------------------------------------
def _ray_importable() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


RAY_MISSING = not _ray_importable()
# what a test that starts Ray carries: slow, in the Ray group (tests/conftest.py), skipped with
# the reason when ray is not installed
RAY_TEST_MARKS = (
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(
        RAY_MISSING, reason="ray is not importable (pip install 'virnucpro-tui[ray]')"
    ),
)
F = TypeVar("F", bound=Callable[..., Any])


def needs_ray(test: F) -> F:
    """Mark one test as starting Ray (RAY_TEST_MARKS)."""
    for mark in RAY_TEST_MARKS:
        test = mark(test)
    return test


def private_ray_dir() -> Path:
    """A new private Ray temp directory: no other Ray on this machine is found or disturbed
    (short, because Ray puts its sockets there). Removed at exit too: Ray's exit hooks,
    registered later and so run earlier, may write a session directory into it."""
    path = Path(tempfile.mkdtemp(prefix="vt-ray-", dir="/tmp"))
    atexit.register(shutil.rmtree, path, True)
    return path


def fake_run_config(
    inputs: list[Path], out: Path, models: ModelFiles, **overrides: Any
) -> RunConfig:
    """A small run for the fake backend: chunk length 500, two CPU slots, six frames a shard
    (``overrides`` replace any of them, or set other fields)."""
    from virnucpro_tui.models.settings import EngineSettings
    from virnucpro_tui.run.orchestrator import RunConfig

    fields: dict[str, Any] = {
        "engine": EngineSettings(chunk_length=500),
        "devices": "cpu:2",
        "shard_size": 6,
        "command": ["test"],
        **overrides,
    }
    return RunConfig(inputs=inputs, out=out, models=models, **fields)


def run_fake(cfg: RunConfig, *sinks: Any) -> list[Event]:
    """Execute ``cfg`` on the fake backend (writing results); the events it emitted."""
    from virnucpro_tui.run.orchestrator import Orchestrator
    from virnucpro_tui.testing.fake_backend import FakeBackend

    seen: list[Event] = []
    code = Orchestrator(
        cfg, [seen.append, *sinks], backend=FakeBackend(write_results=True)
    ).execute()
    assert code == 0
    return seen
