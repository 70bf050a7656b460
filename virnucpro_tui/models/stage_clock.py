"""A shard's stages, timed after the device finished each, and the progress calls of a stage."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import torch


class Progress(Protocol):
    """``progress(stage, items_done, items_total, tokens)`` after each batch of a stage is
    queued on the device, and once more when the stage's work is done on the device, with
    ``stage_seconds`` (GPU-synchronised: the stage times of a shard add up to its time)."""

    def __call__(
        self, stage: str, done: int, total: int, tokens: int, stage_seconds: float | None = None
    ) -> None: ...


class StageClock:
    """Wall seconds per stage, each taken after a device synchronisation, so work queued on
    the GPU is charged to the stage that queued it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def stage_done(progress: Progress | None, stage: str, n: int, clock: StageClock) -> None:
    if progress is not None:
        progress(stage, n, n, 0, stage_seconds=round(clock.seconds[stage], 4))


def stage_progress(
    stage: str, total: int, progress: Progress | None
) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    done = 0

    def on_batch(items: int, tokens: int) -> None:
        nonlocal done
        done += items
        progress(stage, done, total, tokens)

    return on_batch
