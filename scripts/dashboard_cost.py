#!/usr/bin/env python
"""What one dashboard repaint costs (a benchmark command, not a test; issue 16).

Replays a run's ``events.jsonl`` into the real dashboard (``App.run_test``, headless: Textual
composes and renders every widget but writes nothing to a terminal), one repaint per 0.25 s of
event time, as the app's 4 Hz timer does, with the clock following the events. Prints the CPU
time per tick and, per widget class, the time spent rendering it and how often it rendered.

    .venv/bin/python scripts/dashboard_cost.py RUN_DIR/events.jsonl --size 200x50
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.widget import Widget  # noqa: E402

from virnucpro_tui.pool.events import Event, decode_event  # noqa: E402
from virnucpro_tui.ui.app import VirnucproApp  # noqa: E402
from virnucpro_tui.ui.controllers import ScriptedRun  # noqa: E402

TICK_S = 0.25


def ticks(path: Path) -> list[list[Event]]:
    """The events in 0.25 s slices of their timestamps."""
    events = [e for line in path.read_bytes().splitlines() if (e := decode_event(line))]
    slices: defaultdict[int, list[Event]] = defaultdict(list)
    for event in events:
        slices[int((event.ts - events[0].ts) / TICK_S)].append(event)
    return [slices.get(k, []) for k in range(max(slices) + 1)]


class RenderMeter:
    """Times ``Widget.render_lines`` per widget class while installed."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._original = Widget.render_lines

    def __enter__(self) -> RenderMeter:
        original, seconds, calls = self._original, self.seconds, self.calls

        def render_lines(widget: Widget, crop: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(widget, crop)
            finally:
                seconds[type(widget).__name__] += time.perf_counter() - start
                calls[type(widget).__name__] += 1

        Widget.render_lines = render_lines  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        Widget.render_lines = self._original  # type: ignore[method-assign]


async def replay(slices: list[list[Event]], size: tuple[int, int]) -> tuple[float, RenderMeter]:
    start_ts = next(e for s in slices for e in s).ts
    now = [start_ts]
    app = VirnucproApp(ScriptedRun([]), clock=lambda: now[0], toasts=False, refresh_hz=0.001)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        with RenderMeter() as meter:
            cpu = time.process_time()
            for k, events in enumerate(slices):
                now[0] = start_ts + TICK_S * (k + 1)
                app.apply_events(events)
                app.refresh_dashboard()
                await pilot.pause()
            cpu = time.process_time() - cpu
    return cpu, meter


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("events", type=Path, help="a run's events.jsonl")
    p.add_argument("--size", default="200x50", help="terminal COLUMNSxROWS")
    args = p.parse_args()
    columns, rows = (int(x) for x in args.size.split("x"))
    slices = ticks(args.events)
    cpu, meter = asyncio.run(replay(slices, (columns, rows)))
    n = len(slices)
    print(f"{n} ticks ({sum(map(len, slices))} events): {1000 * cpu / n:.1f} ms CPU per tick")
    print(f"{'widget':20} {'render ms/tick':>15} {'renders/tick':>13}")
    for name, seconds in meter.seconds.most_common(8):
        print(f"{name:20} {1000 * seconds / n:15.2f} {meter.calls[name] / n:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
