"""Worker interpreters started ahead of the pool (pool/standby.py), with real processes: each
worker of a run starts from one, the outputs are the same without them, and none outlives a run
that ends before its pool starts, a slot it was not made for, a Ctrl-C or its orchestrator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    SAMPLE_CONTIGS,
    SAMPLE_JOBS,
    assert_no_live_processes,
    cli,
    outputs,
    sample_run,
)
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.pool.devices import resolve_devices
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.local import LocalBackend
from virnucpro_tui.pool.worker_config import WorkerConfig, WorkerSettings, slot_environment

pytestmark = pytest.mark.slow

STANDBY_NOTE = re.compile(
    r" \(a standby: imported torch in \d+\.\d s, then waited \d+\.\d s\)$"  # a CPU slot's
)


def first_log_line(run: Path, worker: int) -> str:
    return (run / "logs" / f"worker-{worker}.log").read_text().splitlines()[0]


def test_each_worker_starts_from_a_standby_and_the_outputs_match_a_run_without(
    tmp_path: Path, demo_env: dict[str, str], local_baseline: dict[str, bytes]
) -> None:
    run = tmp_path / "run"
    r = cli(sample_run(run, "--devices", "cpu:2"), demo_env)
    assert r.returncode == 0, r.stderr
    for worker in (0, 1):
        assert STANDBY_NOTE.search(first_log_line(run, worker)), first_log_line(run, worker)
    assert outputs(run, SAMPLE_JOBS) == local_baseline

    plain = tmp_path / "plain"
    r = cli(sample_run(plain, "--devices", "cpu:2"), {**demo_env, "VIRNUCPRO_TUI_STANDBY": "0"})
    assert r.returncode == 0, r.stderr
    assert first_log_line(plain, 0).endswith("on CPU worker 0")  # spawned as before
    assert outputs(plain, SAMPLE_JOBS) == local_baseline


def processes_marked(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("VIRNUCPRO_TEST_MARK") == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_no_standby_outlives_a_run_refused_before_its_pool_starts(
    tmp_path: Path, demo_env: dict[str, str]
) -> None:
    bad = tmp_path / "500_model.pth"
    bad.write_bytes(b"PK\x03\x04 not a model")
    mark = uuid.uuid4().hex
    started = time.monotonic()
    r = cli(
        ["run", str(SAMPLE_CONTIGS), "--out", str(tmp_path / "run"), "--demo", "--no-ui",
         "--devices", "cpu:2", "--classifier", str(bad)],
        {**demo_env, "VIRNUCPRO_TEST_MARK": mark},
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and str(bad) in r.stderr, r.stderr
    assert time.monotonic() - started < 60  # it did not wait on its standbys
    deadline = time.monotonic() + 15
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_marked(mark) == []


def worker_config(tmp_path: Path, demo_models, threads: int) -> WorkerConfig:
    (slot,) = resolve_devices("cpu:1")
    files = ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)
    return WorkerConfig(slot, RunLayout(tmp_path / "run"), files, torch_threads=threads)


def test_a_standby_is_used_only_by_a_worker_of_its_environment_and_while_alive(
    tmp_path: Path, demo_models
) -> None:
    (slot,) = resolve_devices("cpu:1")
    settings = WorkerSettings()
    backend = LocalBackend()
    backend.prestart([slot_environment(slot, settings, n) for n in (1, 2)])
    ctrl_c, kept = (s.process for s in backend.standbys.waiting)
    ctrl_c_pid, kept_pid = ctrl_c.pid, kept.pid
    assert ctrl_c_pid is not None and kept_pid is not None
    spawned = []
    try:
        psutil.Process(ctrl_c_pid).send_signal(signal.SIGINT)  # a Ctrl-C ends a standby
        assert_no_live_processes({ctrl_c_pid}, timeout=60)
        spawned.append(backend.spawn(worker_config(tmp_path, demo_models, 1)))
        assert spawned[-1].process.pid not in (ctrl_c_pid, kept_pid)  # dead: started afresh
        spawned.append(backend.spawn(worker_config(tmp_path, demo_models, 3)))
        assert spawned[-1].process.pid not in (ctrl_c_pid, kept_pid)  # no standby for 3 threads
        spawned.append(backend.spawn(worker_config(tmp_path, demo_models, 2)))
        assert spawned[-1].process.pid == kept_pid  # its own environment: the standby
        assert len(backend.standbys) == 0
    finally:
        for transport in spawned:
            transport.kill()
            transport.close()
        backend.release()
    assert_no_live_processes({t.process.pid or 0 for t in spawned} | {kept_pid})


def test_standbys_not_taken_end_with_release_and_with_a_killed_orchestrator(
    tmp_path: Path,
) -> None:
    backend = LocalBackend()
    (slot,) = resolve_devices("cpu:1")
    backend.prestart([slot_environment(slot, WorkerSettings(), 1)])
    (standby,) = backend.standbys.waiting
    backend.release()
    assert_no_live_processes({standby.process.pid or 0}, timeout=10)

    # an orchestrator killed with -9 before its pool started: the standby sees its pipe close
    script = (
        "import os, sys\n"
        "from virnucpro_tui.pool.devices import resolve_devices\n"
        "from virnucpro_tui.pool.local import LocalBackend\n"
        "from virnucpro_tui.pool.worker_config import WorkerSettings, slot_environment\n"
        "b = LocalBackend()\n"
        "b.prestart([slot_environment(resolve_devices('cpu:1')[0], WorkerSettings(), 1)])\n"
        "print(b.standbys.waiting[0].process.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == -9, done.stderr
    pid = int(done.stdout.split()[0])
    assert_no_live_processes({pid}, timeout=60)


IMPORT_PROBE = """
import os, sys, torch
from virnucpro_tui.models.compile_cache import configure
from virnucpro_tui.pool.worker_process import _import_compiler
imported = _import_compiler()
print(imported, "torch._dynamo" in sys.modules, "torch._inductor.compile_fx" in sys.modules,
      "virnucpro_tui.models.fast" in sys.modules, torch.cuda.is_initialized())
print(configure(None, "key"))  # where the engine will compile: the persistent cache
try:  # Triton's hash of its own files, which loading cached kernels needs: computed ahead
    from triton.runtime.cache import triton_key
    print("triton key hashed", triton_key.cache_info().currsize == 1)
except ImportError:
    print("no triton")
"""


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("GPU-00000000-0000-0000-0000-000000000000", "True True True True False"),
        ("", "False False False False False"),
    ],  # fmt: skip
)
def test_a_gpu_standby_imports_the_compiler_and_a_cpu_one_does_not(
    visible: str, expected: str, tmp_path: Path
) -> None:
    """The first ``torch.compile`` imports Dynamo and Inductor (seconds): a standby for a GPU
    slot imports them while it waits, without initialising CUDA; a CPU slot never compiles.
    Either way the engine then compiles into the persistent cache, not Inductor's /tmp default
    (which importing Dynamo sets in the environment)."""
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env |= {"CUDA_VISIBLE_DEVICES": visible, "VIRNUCPRO_TUI_COMPILE_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-3:-1] == [expected, str(tmp_path / "key")]
    assert lines[-1] in ("no triton", f"triton key hashed {bool(visible)}")


def test_a_gpu_standby_keeps_the_users_inductor_cache(tmp_path: Path) -> None:
    """A ``TORCHINDUCTOR_CACHE_DIR`` the user set is theirs: the compiler's import keeps it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "GPU-0", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2] == str(tmp_path)
