"""The dashboard from 80x24 to 200x60 (issue 23, item 3): every worker's title and state on
screen without scrolling (one line per worker when the full panels do not fit), the job table's
Outputs column whole from 120 columns on, the demo notice on one line, and a help that reads at
80 columns."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from rich.text import Text

from tests.ui import scenario
from tests.ui.helpers import screen_text, scripted_app, settle
from virnucpro_tui.pool.events import Event, RunStarted
from virnucpro_tui.ui.render.results import DEMO_BANNER, DEMO_SHORT
from virnucpro_tui.ui.screens import HelpScreen, help_text
from virnucpro_tui.ui.widgets import JobTable, WorkerGrid, WorkerPanel

pytestmark = pytest.mark.ui

SIZES = [(80, 24), (100, 30), (120, 35), (160, 45), (200, 60)]


def demo(events: list[Event]) -> list[Event]:
    return [
        msgspec.structs.replace(e, demo=True, notice="Demo models with random weights")
        if isinstance(e, RunStarted)
        else e
        for e in events
    ]


def shoot(size: tuple[int, int], workers: int) -> tuple[str, dict[str, object]]:
    async def run() -> tuple[str, dict[str, object]]:
        app = scripted_app(demo(scenario.mid_run_events(workers=workers)))
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            grid = app.query_one(WorkerGrid)
            facts = {
                "compact": grid.compact,
                "scroll": app.query_one("#workers-scroll").max_scroll_y,
                "panels": len(app.query(WorkerPanel)),
                "outputs": app.query_one(JobTable).row_text("gut_contigs")[-1],
            }
            return screen_text(app), facts

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("size", "workers"),
    [(size, 2) for size in SIZES] + [(size, 8) for size in SIZES if size[0] >= 100],
)
def test_every_worker_title_and_state_is_on_screen_without_scrolling(
    size: tuple[int, int], workers: int
) -> None:
    text, facts = shoot(size, workers)
    lines = text.splitlines()
    assert facts["panels"] == workers and facts["scroll"] == 0
    for n in range(workers):
        titled = [line for line in lines if f"worker {n} " in line]
        assert titled and "· BUSY" in titled[0], (n, size)
    width, height = size
    if width == 80 or workers == 8:
        assert facts["compact"]  # the full panels cannot all fit: one line each
    if (width, height) in ((160, 45), (200, 60)) and workers == 2:
        assert not facts["compact"]  # they fit: the full panels, every line of them
        assert text.count("╰") >= 2 and "cache " in text
    assert all(len(line) <= width for line in lines)


@pytest.mark.parametrize("size", [s for s in SIZES if s[0] >= 120])
def test_the_job_tables_columns_and_the_demo_notice_are_whole(size: tuple[int, int]) -> None:
    """At 120x35 the Outputs column was cut and the demo notice wrapped."""
    text, facts = shoot(size, 2)
    header = next(line for line in text.splitlines() if " Job " in line and "Status" in line)
    assert "Called virus" in header and "Outputs" in header
    assert facts["outputs"] == "gut_contigs/" and " gut_contigs/ " in text
    demo_lines = [line for line in text.splitlines() if "DEMO" in line]
    assert demo_lines and any(DEMO_BANNER in line for line in demo_lines)
    assert all(DEMO_BANNER in line or DEMO_SHORT in line for line in demo_lines), demo_lines


@pytest.mark.parametrize("size", [(80, 24), (120, 35)])
def test_the_help_reads_whole_at_80_columns(size: tuple[int, int]) -> None:
    """At 80 columns the help wrapped mid-entry and a scrollbar glyph sat over its text: each
    of its lines on screen is whole, its scrollbar in a gutter of its own."""
    help_lines = [line for line in Text.from_markup(help_text()).plain.splitlines() if line]

    async def run() -> str:
        app = scripted_app(scenario.mid_run_events())
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            await pilot.press("question_mark")
            await settle(pilot, app)
            assert isinstance(app.screen, HelpScreen)
            return screen_text(app)

    text = asyncio.run(run())
    shown = [line for line in help_lines if line.strip() in text]
    assert len(shown) >= min(len(help_lines), size[1] - 4) - 2  # every row the dialog has
    rows = text.splitlines()
    for line in shown:  # whole, and a blank column after it: the scrollbar is in its gutter
        row = next(r for r in rows if line in r)
        assert row[row.index(line) + len(line) :][:1] == " ", (line, row)
