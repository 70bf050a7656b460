#!/usr/bin/env python3
"""Regenerate ``docs/screenshot.svg``: the dashboard 25 minutes into a run on two H200s.

The events are the fixed sequence in ``tests/ui/scenario.py`` (fixed timestamps, a seeded
generator), so the picture only changes when the dashboard does.

    python scripts/screenshot.py [--size 160x48] [--workers 2] [--out docs/screenshot.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui import scenario  # noqa: E402
from virnucpro_tui.ui.app import VirnucproApp  # noqa: E402
from virnucpro_tui.ui.controllers import ScriptedRun  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


async def shoot(size: tuple[int, int], workers: int) -> str:
    app = VirnucproApp(
        ScriptedRun(scenario.mid_run_events(workers)), clock=lambda: scenario.NOW, toasts=False
    )
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.refresh_dashboard()
        await pilot.pause(0.2)
        return app.export_screenshot(title="virnucpro-tui — two H200s, 25 minutes in")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=parse_size, default=(160, 48), help="terminal WIDTHxHEIGHT (default 160x48)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="GPU workers in the scene (default 2)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.svg")
    args = parser.parse_args(argv)
    os.environ["TZ"] = "UTC"  # the log shows local times: pin them
    time.tzset()
    svg = asyncio.run(shoot(args.size, args.workers))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg, encoding="utf-8")
    print(f"wrote {args.out} ({args.size[0]}x{args.size[1]}, {args.workers} workers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
