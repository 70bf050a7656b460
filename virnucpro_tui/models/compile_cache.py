"""A persistent ``torch.compile`` cache in the user's cache directory
(docs/benchmarks.md#start-up).

Inductor's FX graph cache and the AOTAutograd cache (Triton's kernels under them) live in
``$VIRNUCPRO_TUI_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/virnucpro-tui/compile``, else
``~/.cache/virnucpro-tui/compile``: a later run (or a restarted worker) reuses the compiled
graphs instead of compiling again. Torch's default lives in ``/tmp``, which many systems clear.
Call :func:`configure` before the first ``torch.compile`` of the process.

The engine keeps one sub-directory per torch, Triton and GPU (:func:`cache_key`), so an upgrade
or another card starts a fresh one and never reads kernels built for something else. A process
that finished compiling marks its directory warm (:func:`mark_warm`); the next one then loads
the kernels in-process instead of starting Inductor's pool of compile workers (each of them
imports torch again), which costs seconds and compiles nothing on a warm cache. A cache that
cannot be used (a corrupt or stale file) is cleared and the models compiled again
(:func:`run_or_recompile`): the run goes on, and the engine reports it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ENV = "VIRNUCPRO_TUI_COMPILE_CACHE"
WARM_MARKER = "warm"  # written once a process compiled and warmed up every model in the cache
THREADS_ENV = "TORCHINDUCTOR_COMPILE_THREADS"


def default_cache_dir() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "virnucpro-tui" / "compile"


def configure(
    directory: Path | None = None, key: str | None = None, expect: Sequence[str] = ()
) -> Path:
    """Point Inductor's and Triton's caches at ``directory`` (its ``key`` sub-directory when
    given; created) and turn the FX graph and AOTAutograd caches on. A
    ``TORCHINDUCTOR_CACHE_DIR`` the user set is left alone. On a cache warm for every variant in
    ``expect`` (:func:`mark_warm`) kernels load in this process, without Inductor's compile
    workers."""
    if directory is None and _users_inductor_cache() is not None:
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    path = Path(directory) if directory is not None else default_cache_dir()
    if key:
        path = path / key
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)  # Triton's kernels go under it
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    _set_live("torch._inductor.config", "fx_graph_cache", True)
    _set_live("torch._functorch.config", "enable_autograd_cache", True)
    if is_warm(path, *expect) and THREADS_ENV not in os.environ:
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1
    return path


def _users_inductor_cache() -> str | None:
    """``TORCHINDUCTOR_CACHE_DIR`` when the user chose it. Importing Dynamo sets it to torch's
    own default in ``/tmp`` when unset; that value is torch's, not a choice to honour."""
    value = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if value is None:
        return None
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return None if os.path.abspath(value) == os.path.abspath(default_cache_dir()) else value


def cache_key(device: Any) -> str:
    """``torch-<v>_triton-<v>_<gpu>-sm<cc>`` (``cpu`` for the CPU): what compiled kernels
    depend on, as a directory name."""
    import torch

    parts = [f"torch-{torch.__version__}", f"triton-{_version('triton')}"]
    if getattr(device, "type", "cpu") == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        parts.append(f"{torch.cuda.get_device_name(device)}-sm{major}{minor}")
    else:
        parts.append("cpu")
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", "_".join(parts).replace(" ", "-")).strip("-")


def is_warm(path: Path, *variants: str) -> bool:
    """A process finished compiling into ``path`` (each of ``variants``: model, dtype and the
    settings that change its graph)."""
    try:
        done = set((path / WARM_MARKER).read_text().splitlines())
    except OSError:
        return False
    return all(v in done for v in variants)


def mark_warm(path: Path, variants: Iterable[str] = ()) -> None:
    """``variants`` compiled and warmed up from ``path``: later processes load, not compile."""
    done = set(variants) | (
        {*(path / WARM_MARKER).read_text().splitlines()} if is_warm(path) else set()
    )
    (path / WARM_MARKER).write_text("".join(f"{v}\n" for v in sorted(done)))


def discard(path: Path) -> None:
    """Empty the cache directory (moved aside first, so a concurrent reader never sees half of
    it), leaving it in place for the compilation that follows."""
    aside = path.with_name(f"{path.name}.discarded-{os.getpid()}")
    try:
        path.rename(aside)
    except OSError:
        aside = path
    shutil.rmtree(aside, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def run_or_recompile(
    work: Callable[[], None],
    path: Path,
    fallback: Callable[[str], None],
    again: Callable[[], None] | None = None,
) -> None:
    """``work`` (compile and warm up) on the cache at ``path``; if it fails, clear the cache, say
    why through ``fallback(message)`` and compile again from nothing, in-process: ``again``
    (default ``work``), which must also warm up whatever this process compiled before, since
    the reset forgets it. Running out of device memory, or a second failure, is not the cache's
    and is raised."""
    import torch

    try:
        work()
        return
    except torch.cuda.OutOfMemoryError:
        raise  # the device's, not the cache's
    except Exception as exc:  # noqa: BLE001 - any other failure on a cache gets one clean retry
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    fallback(
        f"the compiled-kernel cache {path} could not be used ({reason[:300]}); "
        "it was cleared and the model is compiled again"
    )
    discard(path)
    torch.compiler.reset()
    from virnucpro_tui.models.precompile import forget_all

    forget_all()  # what layers compiled ahead of time loaded from the cleared cache
    _set_live("torch._inductor.config", "compile_threads", 1)
    (again or work)()


def _set_live(module: str, name: str, value: object) -> None:
    """Set a torch config value now, if its module is loaded (env variables are read only when
    the module is imported)."""
    config = sys.modules.get(module)
    if config is not None:
        setattr(config, name, value)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"
