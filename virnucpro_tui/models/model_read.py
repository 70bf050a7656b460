"""Reading a model's files on a thread of the engine's choosing, timed, and moving it to the
device: the steps of ``Engine.load`` that do not depend on the engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


def read_now(fn: Callable[..., Any], *args: Any) -> Callable[[], tuple[Any, float]]:
    """Read now; the returned loader gives the result (or raises the error) later."""
    try:
        result = timed(fn, *args)
    except Exception as exc:  # noqa: BLE001 - raised again where the load reports errors
        error = exc

        def fail() -> tuple[Any, float]:
            raise error

        return fail
    return lambda: result


def onto(
    load: Callable[..., Any], path: Any, dtype: torch.dtype, device: torch.device, staged: bool
) -> Any:
    """A model read in ``dtype`` and moved to ``device`` (from the file's pages, no copy between
    when the file stores ``dtype``; ``staged``: through page-locked buffers)."""
    return load(path, dtype).to(device, dtype, staged=staged)
