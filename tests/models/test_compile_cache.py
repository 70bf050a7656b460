"""The compile cache: keyed on torch, Triton and the device, marked warm once a process compiled
into it, and cleared (with a report) when what it holds cannot be used, without failing the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from virnucpro_tui.models import compile_cache


@pytest.fixture(autouse=True)
def _restore_torch_cache_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """``configure`` sets process-wide variables: give them back after each test."""
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setenv("TORCHINDUCTOR_AUTOGRAD_CACHE", "")
    monkeypatch.delenv("TORCHINDUCTOR_AUTOGRAD_CACHE")


def test_the_key_names_torch_triton_and_the_device_as_one_directory_name() -> None:
    key = compile_cache.cache_key(torch.device("cpu"))
    assert key.startswith(f"torch-{torch.__version__}_triton-")
    assert key.endswith("_cpu") and "/" not in key and " " not in key


def test_a_failing_warm_up_clears_the_cache_reports_it_and_compiles_again(tmp_path: Path) -> None:
    cache = compile_cache.configure(tmp_path / "compile", key="k")
    (cache / "stale-kernel.py").write_text("garbage")
    compile_cache.mark_warm(cache)
    calls: list[int] = []
    said: list[str] = []

    def work() -> None:
        calls.append(len(list(cache.iterdir())))
        if len(calls) == 1:
            raise RuntimeError("invalid cubin\nsecond line")

    compile_cache.run_or_recompile(work, cache, said.append)
    assert calls == [2, 0]  # the second try saw an empty cache (no stale kernel, not warm)
    assert len(said) == 1 and str(cache) in said[0] and "RuntimeError: invalid cubin" in said[0]
    assert "second line" not in said[0] and "compiled again" in said[0]
    assert cache.is_dir() and not compile_cache.is_warm(cache)
    assert not list(cache.parent.glob("*.discarded-*"))


def test_the_retry_warms_up_again_what_the_process_compiled_before(tmp_path: Path) -> None:
    cache = compile_cache.configure(tmp_path / "compile", key="k")
    ran: list[str] = []

    def work() -> None:
        ran.append("esm")
        raise RuntimeError("corrupt")

    def again() -> None:
        ran.extend(["dnabert again", "esm again"])

    compile_cache.run_or_recompile(work, cache, lambda _why: None, again=again)
    assert ran == ["esm", "dnabert again", "esm again"]


def test_a_second_failure_is_not_the_caches_and_is_raised(tmp_path: Path) -> None:
    cache = compile_cache.configure(tmp_path / "compile", key="k")
    said: list[str] = []

    def work() -> None:
        raise ValueError("the model itself is broken")

    with pytest.raises(ValueError, match="broken"):
        compile_cache.run_or_recompile(work, cache, said.append)
    assert len(said) == 1


def test_running_out_of_device_memory_is_not_blamed_on_the_cache(tmp_path: Path) -> None:
    cache = compile_cache.configure(tmp_path / "compile", key="k")
    (cache / "kernel.py").write_text("kept")
    said: list[str] = []

    def work() -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        compile_cache.run_or_recompile(work, cache, said.append)
    assert said == [] and (cache / "kernel.py").read_text() == "kept"


def test_a_warm_cache_loads_kernels_without_the_compile_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._inductor.config as inductor_config

    monkeypatch.delenv(compile_cache.THREADS_ENV, raising=False)
    monkeypatch.setattr(inductor_config, "compile_threads", 8)
    cache = compile_cache.configure(tmp_path, key="k")
    assert inductor_config.compile_threads == 8  # cold: compile in parallel
    compile_cache.mark_warm(cache)
    assert compile_cache.configure(tmp_path, key="k") == cache
    assert inductor_config.compile_threads == 1


COMPILE_AND_CHECK = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from virnucpro_tui.models import compile_cache

    cache = compile_cache.configure(Path(sys.argv[1]), compile_cache.cache_key(torch.device("cpu")))
    said = []
    result = {}

    def work():
        f = torch.compile(lambda x: torch.nn.functional.gelu(x) * 3 + 1, dynamic=True)
        x = torch.linspace(-2, 2, 64)
        result["ok"] = bool(torch.allclose(f(x), torch.nn.functional.gelu(x) * 3 + 1))

    compile_cache.run_or_recompile(work, cache, said.append)
    compile_cache.mark_warm(cache)
    print("RESULT", result["ok"], len(said), said[0] if said else "")
    """
)


@pytest.mark.slow
def test_a_corrupted_cache_on_disk_never_fails_a_new_process(tmp_path: Path) -> None:
    """A real Inductor cache (CPU kernels), filled by one process, every file then damaged: the
    next process still computes the right values."""

    def fresh() -> str:
        out = subprocess.run(
            [sys.executable, "-c", COMPILE_AND_CHECK, str(tmp_path / "compile")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))

    assert fresh().startswith("RESULT True 0")
    damaged = 0
    for path in (tmp_path / "compile").rglob("*"):
        if path.is_file() and path.name != compile_cache.WARM_MARKER:
            path.write_bytes(path.read_bytes()[:40] + b"\x00 not what was written")
            damaged += 1
    assert damaged >= 3
    line = fresh()
    assert line.startswith("RESULT True"), line
    if not line.startswith("RESULT True 0"):  # torch did not skip the damage by itself
        assert "could not be used" in line and "compile" in line


def test_torchs_own_tmp_default_does_not_hide_the_persistent_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing Dynamo sets ``TORCHINDUCTOR_CACHE_DIR`` to torch's ``/tmp`` default; the engine
    still compiles into its persistent cache. A directory the user set is kept."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "ours"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert compile_cache.configure(None, key="k") == tmp_path / "ours" / "k"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "users"))
    assert compile_cache.configure(None, key="k") == tmp_path / "users"
