"""The run's rate and ETA (run/work_rate.py): from finished shards only, paused time left out,
and never more than the workers' own rates (issue 23, items 2 and 6)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.test_describe import fold, prepared, shard_done, started
from tests.ui import scenario
from tests.ui.helpers import ev
from virnucpro_tui.pool.events import Event, ShardDone
from virnucpro_tui.run.describe import progress_line
from virnucpro_tui.run.view import RunView
from virnucpro_tui.run.work_rate import RATE_WINDOW_S

T = 1_000.0


def busy_rates(done: list[ShardDone], now: float) -> dict[int, float]:
    """Each worker's frames over its own seconds, for its shards finished in the last window
    (at least its last one): computed here, from the events, independently of RunView."""
    by_worker: dict[int, list[ShardDone]] = defaultdict(list)
    for e in done:
        assert e.worker is not None
        by_worker[e.worker].append(e)
    rates = {}
    for worker, shards in by_worker.items():
        recent = [e for e in shards if e.ts >= now - RATE_WINDOW_S] or shards[-1:]
        rates[worker] = sum(e.frames for e in recent) / sum(e.seconds for e in recent)
    return rates


def one_gpu_shards(count: int) -> list[Event]:
    """One GPU worker's shards of 2,048 frames in 3.8 s each (ESM-2: 3.55 s, synchronised), with
    the progress events that close each model's stage, as a worker sends them."""
    gpu = [{"worker": 0, "kind": "cuda", "index": 0, "uuid": "GPU-1", "name": "H100"}]
    events = [ev("run_started", T, out="/r", jobs=["a"], workers=gpu)]
    stages = {"tokenize": 0.04, "dnabert": 0.18, "esm": 3.55, "classifier": 0.01}
    for i in range(count):
        t = T + 1 + 3.8 * i
        shard = {"shard": i, "frames_total": 2048}
        events += [
            ev("progress", t, 0, "a", stage="start", frames_done=0, **shard),
            ev(
                "progress",
                t + 0.2,
                0,
                "a",
                stage="dnabert",
                frames_done=2048,
                seconds=0.2,
                stage_total=2048,
                **shard,
            ),
            ev(
                "progress",
                t + 3.75,
                0,
                "a",
                stage="esm",
                frames_done=2048,
                seconds=3.75,
                stage_total=2048,
                **shard,
            ),
            ev(
                "shard_done",
                t + 3.8,
                0,
                "a",
                shard=i,
                frames=2048,
                seconds=3.8,
                virus_frames=1024,
                others_frames=1024,
                stage_seconds=stages,
            ),
        ]
    return events


@pytest.mark.parametrize("run", ["two H200s mid-run", "one H100 from its start"])
def test_the_header_rate_never_exceeds_the_workers_rates_from_the_same_shards(run: str) -> None:
    """On one H100 the header said 631 frames/s at 31 s while the ESM-2 stage rate that bounds
    it was 584: the header counted frames still in flight. At every event of a run the header's
    rate is the sum of the panels' and at most the sum of the workers' busy rates and of their
    ESM-2 stage rates (each frame is one protein through ESM-2)."""
    events = scenario.mid_run_events() if run.startswith("two") else one_gpu_shards(20)
    view, done, checked = RunView(), [], 0
    for e in events:
        view.apply(e)
        if isinstance(e, ShardDone):
            done.append(e)
        if not done:
            continue
        header = view.throughput(now=e.ts)
        assert header <= sum(busy_rates(done, e.ts).values()) + 1e-6, (e.ts - scenario.T0, header)
        panels = sum(view.worker_rate(n, now=e.ts) for n in view.workers)
        assert abs(header - panels) < 1e-6
        esm = [w.esm_rate for w in view.workers.values()]
        if all(esm):
            assert header <= sum(r or 0.0 for r in esm)
        checked += 1
    assert checked >= 40


def test_frames_in_flight_do_not_raise_the_rate() -> None:
    """A shard whose ESM-2 stage has closed (every frame embedded) is not yet a finished shard:
    the rate stays that of the verified shards."""
    view = fold(started(T), prepared(T, 4, 4, frames=100, shards=10))
    view.apply(ev("progress", T, 0, "a", shard=0, stage="start", frames_done=0, frames_total=10))
    view.apply(shard_done(T + 2, 0))  # 10 frames in 2 s
    view.apply(ev("progress", T + 2, 0, "a", shard=1, stage="start", frames_total=10))
    view.apply(
        ev("progress", T + 2.2, 0, "a", shard=1, stage="esm", frames_done=10, frames_total=10)
    )
    assert view.throughput(now=T + 2.3) == 5.0


def test_a_pause_does_not_slow_the_rate_or_stretch_the_eta() -> None:
    """After a pause the ETA was about 4x too long (``ETA 00:51`` with ~12 s of work left): the
    rate counted the paused minutes. Paused time with nothing running is left out."""
    view = fold(started(T), prepared(T, 4, 4, frames=200, shards=20))
    t = T
    for i in range(5):  # a shard of 10 frames every 2 s: 5 frames/s
        view.apply(ev("progress", t, 0, "a", shard=i, stage="start", frames_total=10))
        t += 2
        view.apply(shard_done(t, i))
    # p: the shard already running finishes, then nothing runs for two minutes
    view.apply(ev("progress", t, 0, "a", shard=5, stage="start", frames_total=10))
    view.apply(ev("run_paused", t + 0.5, shards_running=1))
    view.apply(shard_done(t + 2, 5))
    assert view.eta_seconds(t + 60) is None and "ETA paused" in progress_line(view, t + 60)
    t += 122
    view.apply(ev("run_resumed", t))
    assert abs(view.throughput(now=t) - 5.0) < 0.01
    view.apply(ev("progress", t, 0, "a", shard=6, stage="start", frames_total=10))
    view.apply(shard_done(t + 2, 6))
    assert abs(view.throughput(now=t + 2) - 5.0) < 0.01
    eta = view.eta_seconds(t + 2)
    assert eta is not None and abs(eta - 130 / 5.0) < 0.5  # 130 frames left at 5 frames/s
    view.apply(ev("run_done", t + 3, status="interrupted", exit_code=130))
    assert abs(view.average_throughput() - 70 / 15) < 0.01  # 15 s of work, not 135


def test_an_idle_worker_slows_down_rather_than_keeping_its_last_speed() -> None:
    view = fold(started(T), prepared(T, 4, 4, frames=100, shards=10))
    view.apply(ev("progress", T, 0, "a", shard=0, stage="start", frames_total=10))
    view.apply(shard_done(T + 2, 0))
    assert view.throughput(now=T + 3) == 5.0  # within its last shard's time: still 5
    # idle for 8 s: once a worker has gone longer than its last shard took without finishing
    # one, the wait counts (10 frames over 8 s), and keeps counting
    assert abs(view.throughput(now=T + 10) - 1.25) < 0.01
    assert abs(view.throughput(now=T + 42) - 0.25) < 0.01
