"""The engine's typed reports (``models.reports``) as the events a worker sends
(docs/events.md: ``model_load``, ``oom``, ``warning``)."""

from __future__ import annotations

from dataclasses import dataclass

from msgspec import UNSET, UnsetType

from virnucpro_tui.models import reports as r
from virnucpro_tui.pool import events as ev


def engine_event(
    report: r.EngineReport, worker: int, job: str | None, shard: int | None
) -> ev.Event:
    """The event for one engine report, on ``worker`` while it holds ``job``'s ``shard``."""
    if isinstance(report, r.OomSplit):
        return ev.OutOfMemory(
            worker=worker,
            job=job,
            shard=shard,
            model=report.model,
            batch_size=report.batch_size,
            action="split",
            bytes_freed=report.bytes_freed,
        )
    if isinstance(report, r.CompileCacheFallback):
        return ev.WarningEvent(worker=worker, job=job, message=f"{report.model}: {report.message}")
    return _model_load(report, worker, job, shard)


_LoadReport = (
    r.LoadStarted
    | r.WarmupStarted
    | r.WarmupDone
    | r.CompilingBeside
    | r.CompiledBeside
    | r.ModelLoaded
    | r.LoadFailed
)


def _model_load(
    report: _LoadReport,
    worker: int,
    job: str | None,
    shard: int | None,
) -> ev.ModelLoad:
    if isinstance(report, r.LoadStarted):
        phase, detail = ev.ModelPhase.START, _Detail(dtype=report.dtype)
    elif isinstance(report, r.WarmupStarted):
        detail = _Detail(compile=report.compile, cached=report.cached)
        phase = ev.ModelPhase.WARMUP_START
    elif isinstance(report, r.WarmupDone):
        phase, detail = ev.ModelPhase.WARMUP_DONE, _Detail(seconds=report.seconds)
    elif isinstance(report, r.CompilingBeside):
        phase, detail = ev.ModelPhase.COMPILE_BESIDE_START, _Detail()
    elif isinstance(report, r.CompiledBeside):
        phase, detail = ev.ModelPhase.COMPILE_BESIDE_DONE, _Detail(seconds=report.seconds)
    elif isinstance(report, r.LoadFailed):
        phase, detail = ev.ModelPhase.ERROR, _Detail(message=report.message)
    else:
        phase, detail = ev.ModelPhase.DONE, _loaded(report)
    return ev.ModelLoad(
        worker=worker,
        job=job,
        shard=shard,
        model=report.model,
        phase=phase,
        source=report.source,
        dtype=detail.dtype,
        seconds=detail.seconds,
        compile=detail.compile,
        cached=detail.cached,
        bytes_on_device=detail.bytes_on_device,
        compile_seconds=detail.compile_seconds,
        fast_path=detail.fast_path,
        demo=detail.demo,
        message=detail.message,
    )


@dataclass(frozen=True)
class _Detail:
    """The phase-dependent fields of a ``model_load`` event (unset: not on this phase)."""

    dtype: str | UnsetType = UNSET
    seconds: float | UnsetType = UNSET
    compile: bool | UnsetType = UNSET
    cached: bool | UnsetType = UNSET
    bytes_on_device: int | UnsetType = UNSET
    compile_seconds: float | None | UnsetType = UNSET
    fast_path: bool | UnsetType = UNSET
    demo: bool | UnsetType = UNSET
    message: str | UnsetType = UNSET


def _loaded(report: r.ModelLoaded) -> _Detail:
    return _Detail(
        dtype=report.dtype,
        seconds=round(report.seconds, 3),
        bytes_on_device=report.bytes_on_device,
        compile_seconds=report.compile_seconds,
        fast_path=report.compile_seconds is not None,
        demo=report.demo,
    )
