"""What the engine reports while it loads and runs: one typed struct per report, each turned
into its event by the pool (docs/events.md: ``model_load``, ``oom``, ``warning``). No torch here,
so a front end may import these types without initialising CUDA."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias, Union

import msgspec


class _Report(msgspec.Struct, frozen=True, kw_only=True):
    model: str  # dnabert, esm or classifier


class LoadReport(_Report, frozen=True, kw_only=True):
    """A step of loading one model (``model_load`` events): read, warmed up, ready, or failed."""

    source: str  # the model's file or directory


class LoadStarted(LoadReport, frozen=True, kw_only=True):
    """A model's file begins to be read."""

    dtype: str


class WarmupStarted(LoadReport, frozen=True, kw_only=True):
    """The fast path begins: compilation (``compile``) and warm-up batches; ``cached``: the
    compiled kernels of an earlier run are loaded instead of compiled."""

    compile: bool
    cached: bool = False


class WarmupDone(LoadReport, frozen=True, kw_only=True):
    seconds: float


class CompilingBeside(LoadReport, frozen=True, kw_only=True):
    """The model runs uncompiled while a process beside compiles its layers (a cold cache
    with ``EngineSettings.compile_beside``)."""


class CompiledBeside(LoadReport, frozen=True, kw_only=True):
    """The process beside is done after ``seconds``: the model runs compiled from its next
    batch (or is compiled there, if that process failed: a ``CompileCacheFallback`` says why)."""

    seconds: float


class ModelLoaded(LoadReport, frozen=True, kw_only=True):
    """A model is on its device and ready; ``compile_seconds`` is None without the fast path."""

    seconds: float
    bytes_on_device: int
    dtype: str
    compile_seconds: float | None
    demo: bool


class LoadFailed(LoadReport, frozen=True, kw_only=True):
    message: str


class OomSplit(_Report, frozen=True, kw_only=True):
    """A batch ran out of device memory: the cache was emptied and the batch is split."""

    batch_size: int
    bytes_freed: int


class CompileCacheFallback(_Report, frozen=True, kw_only=True):
    """The saved compiled kernels could not be used (stale or corrupt): compiling instead."""

    message: str


EngineReport: TypeAlias = Union[  # noqa: UP007 - one name for the union, as events.AnyEvent
    LoadStarted,
    WarmupStarted,
    WarmupDone,
    CompilingBeside,
    CompiledBeside,
    ModelLoaded,
    LoadFailed,
    OomSplit,
    CompileCacheFallback,
]
Reporter = Callable[[EngineReport], None]
"""Where an engine sends its reports (a worker turns them into events)."""


def ignore(_report: EngineReport) -> None:
    """The reporter of an engine nobody listens to."""
    return None
