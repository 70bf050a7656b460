"""Each worker's throughput and memory over time, from ``events.jsonl`` (docs/events.md): what
the dashboard showed live, kept for later. Series are decimated to at most ``MAX_POINTS`` per
worker (throughput averaged, memory as the maximum of each time bin, so no peak is lost)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from virnucpro_tui.pool import events as ev

MAX_POINTS = 400


@dataclass(frozen=True)
class Marker:
    t: float  # seconds since the run started
    worker: int
    kind: str  # cache clear, restart, OOM split
    detail: str


@dataclass
class Timeline:
    start: float = 0.0
    throughput: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    memory: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # GiB
    memory_total: dict[int, float] = field(default_factory=dict)  # GiB
    memory_kind: dict[int, str] = field(default_factory=dict)  # cuda, cpu
    markers: list[Marker] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.throughput and not self.memory


def build_timeline(events: Iterable[ev.Event]) -> Timeline:
    events = list(events)
    starts = [e.ts for e in events if isinstance(e, ev.RunStarted)]
    timeline = Timeline(start=starts[0] if starts else min((e.ts for e in events), default=0.0))
    rates: dict[int, list[tuple[float, float]]] = defaultdict(list)
    memory: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for e in events:
        t, w = e.ts - timeline.start, e.worker
        if isinstance(e, ev.RunStarted):
            timeline.labels.update({s.worker: _slot_label(s) for s in e.workers})
        if w is None:
            continue
        if isinstance(e, ev.ShardDone) and e.seconds > 0:
            rates[w].append((t, e.frames / e.seconds))
        elif isinstance(e, ev.GpuMemory):
            memory[w].append((t, e.reserved / 2**30))
            timeline.memory_total[w] = e.total / 2**30
            timeline.memory_kind[w] = e.kind
        elif isinstance(e, ev.CacheCleared):
            timeline.markers.append(Marker(t, w, "cache clear", e.reason))
        elif isinstance(e, ev.OutOfMemory):
            timeline.markers.append(Marker(t, w, "OOM split", f"{e.model} batch {e.batch_size}"))
        elif isinstance(e, ev.WorkerStateChanged) and e.state in (
            ev.WorkerState.RESTARTING,
            ev.WorkerState.CRASHED,
        ):
            reason = ev.present(e.reason) or e.state.value
            timeline.markers.append(Marker(t, w, "restart", reason))
    timeline.throughput = {w: decimate(pts, np.mean) for w, pts in sorted(rates.items())}
    timeline.memory = {w: decimate(pts, np.max) for w, pts in sorted(memory.items())}
    return timeline


def _slot_label(slot: ev.SlotInfo) -> str:
    if slot.kind == "cpu":
        return f"worker {slot.worker} (CPU)"
    name = f" {slot.name}" if slot.name else ""
    return f"worker {slot.worker} (GPU {slot.index}{name})"


def decimate(
    points: list[tuple[float, float]], reduce: object, limit: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """``(times, values)``, at most ``limit`` points: the points of each of ``limit`` equal
    time bins reduced to one (at the bin's mean time)."""
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(arr) <= limit:
        return arr[:, 0], arr[:, 1]
    edges = np.linspace(arr[0, 0], arr[-1, 0], limit + 1)
    bins = np.clip(np.searchsorted(edges, arr[:, 0], side="right") - 1, 0, limit - 1)
    times, values = [], []
    for b in np.unique(bins):
        sel = bins == b
        times.append(float(arr[sel, 0].mean()))
        values.append(float(reduce(arr[sel, 1])))  # type: ignore[operator]
    return np.asarray(times), np.asarray(values)
