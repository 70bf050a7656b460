"""A persistent ``torch.compile`` cache in the user's cache directory (docs/benchmarks.md#start).

Inductor's FX graph cache and the AOTAutograd cache (Triton's kernels under them) live in
``$VIRNUCPRO_TUI_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/virnucpro-tui/compile``, else
``~/.cache/virnucpro-tui/compile``: a later run (or a restarted worker) reuses the compiled
graphs instead of compiling again. Torch's default lives in ``/tmp``, which many systems clear.
Call :func:`configure` before the first ``torch.compile`` of the process.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "VIRNUCPRO_TUI_COMPILE_CACHE"


def default_cache_dir() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "virnucpro-tui" / "compile"


def configure(directory: Path | None = None) -> Path:
    """Point Inductor's and Triton's caches at ``directory`` (created) and turn the FX graph
    and AOTAutograd caches on. A ``TORCHINDUCTOR_CACHE_DIR`` the user set is left alone."""
    path = Path(directory) if directory is not None else default_cache_dir()
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ and directory is None:
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)  # Triton's kernels go under it
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    os.environ["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    _enable_in_loaded_configs()
    return path


def _enable_in_loaded_configs() -> None:
    """The env variables are read when the config modules are imported; set them live too."""
    import sys

    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        inductor.fx_graph_cache = True  # type: ignore[attr-defined]
    functorch = sys.modules.get("torch._functorch.config")
    if functorch is not None:
        functorch.enable_autograd_cache = True  # type: ignore[attr-defined]
