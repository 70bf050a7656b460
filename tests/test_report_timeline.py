"""The report's workers-over-time series from events.jsonl (docs/outputs.md#reporthtml):
throughput and memory per worker, cache clears, restarts and OOM splits marked, decimated
without losing a memory peak."""

from __future__ import annotations

import numpy as np

from virnucpro_tui.pool import events as ev
from virnucpro_tui.report.timeline import MAX_POINTS, build_timeline, decimate

T0 = 1.8e9


def started() -> ev.RunStarted:
    slots = (ev.SlotInfo(0, "cuda", 0, "GPU-a", "H100"), ev.SlotInfo(1, "cuda", 1, "GPU-b", "H100"))
    return ev.RunStarted(ts=T0, out="/r", workers=slots)  # what the timeline reads


def test_series_and_markers_per_worker() -> None:
    events: list[ev.Event] = [started()]
    for k in range(10):
        events.append(
            ev.ShardDone(
                ts=T0 + 10 * (k + 1),
                worker=k % 2,
                job="a",
                shard=k,
                frames=2048,
                seconds=4.0,
                tokens=0,
                virus_frames=0,
                others_frames=0,
                histogram=(),
                top=(),
            )
        )
        events.append(
            ev.GpuMemory(
                ts=T0 + 10 * k + 5,
                worker=k % 2,
                kind="cuda",
                allocated=2**33,
                reserved=(k + 1) * 2**30,
                peak=2**34,
                free=2**35,
                total=80 * 2**30,
            )
        )
    events += [
        ev.CacheCleared(
            ts=T0 + 30,
            worker=0,
            reason="periodic",
            bytes_freed=2**30,
            reserved_before=2**33,
            reserved_after=2**32,
        ),
        ev.OutOfMemory(
            ts=T0 + 40, worker=1, model="esm", batch_size=64, action="split", bytes_freed=0
        ),
        ev.WorkerStateChanged(
            ts=T0 + 50,
            worker=1,
            state=ev.WorkerState.RESTARTING,
            device="GPU 1",
            reason="exit code -9",
        ),
    ]
    timeline = build_timeline(events)
    assert timeline.labels == {0: "worker 0 (GPU 0 H100)", 1: "worker 1 (GPU 1 H100)"}
    t, rate = timeline.throughput[0]
    assert list(t) == [10.0, 30.0, 50.0, 70.0, 90.0] and set(rate) == {512.0}
    t, gib = timeline.memory[1]
    assert list(t) == [15.0, 35.0, 55.0, 75.0, 95.0] and list(gib) == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert timeline.memory_total == {0: 80.0, 1: 80.0}
    assert [(m.t, m.worker, m.kind, m.detail) for m in timeline.markers] == [
        (30.0, 0, "cache clear", "periodic"),
        (40.0, 1, "OOM split", "esm batch 64"),
        (50.0, 1, "restart", "exit code -9"),
    ]


def test_decimation_keeps_at_most_the_limit_and_every_peak() -> None:
    points = [(float(i), 1.0) for i in range(10_000)]
    points[7_321] = (7_321.0, 9.5)  # one spike
    t, v = decimate(points, np.max)
    assert len(t) <= MAX_POINTS
    assert v.max() == 9.5
    t, v = decimate(points[:50], np.mean)
    assert len(t) == 50  # short series are kept as they are
