"""Layout snapshots: the screen as text, from a fixed event sequence with a fixed clock.

A change in layout shows up as a diff against ``snapshots/*.txt``. After an intended change,
regenerate them with ``VIRNUCPRO_UPDATE_SNAPSHOTS=1 pytest tests/ui/test_snapshots.py`` and review
the diff like code.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.ui.helpers import screen_text, scripted_app, settle
from virnucpro_tui.ui import scenario
from virnucpro_tui.ui.widgets import WorkerPanel

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("VIRNUCPRO_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    """Log timestamps are local times: pin the zone so the snapshots hold anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def take(size: tuple[int, int], keys: tuple[str, ...] = (), finished: bool = False) -> str:
    events = scenario.finished_events() if finished else scenario.mid_run_events()

    async def shoot() -> str:
        app = scripted_app(events, clock=lambda: scenario.NOW + (700 if finished else 0))
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            for key in keys:
                await pilot.press(key)
                await settle(pilot, app)
            return screen_text(app)

    return asyncio.run(shoot())


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist; written now, check it in")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"the screen differs from {path.name} (VIRNUCPRO_UPDATE_SNAPSHOTS=1 to accept)"
    )


def rows(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_overview_layout(size: tuple[int, int]) -> None:
    text = take(size)
    width, height = size
    lines = rows(text)
    assert len(lines) == height and all(len(line) <= width for line in lines)
    assert "virnucpro-tui · RUNNING · run /scratch/alice/gut-virome/run1" in lines[0]
    assert "ETA" in text and "frames/s" in text and "47.0%" in text
    assert "q Quit" in lines[-1] and "p Pause/resume" in lines[-1] and "? Help" in lines[-1]
    assert "worker 0 · GPU 0 · NVIDIA H200 · BUSY" in text
    if width >= 120:  # wide: every GPU, the job queue and the results side by side
        assert "worker 1 · GPU 1 · NVIDIA H200 · BUSY" in text
        assert "Job queue" in text and "frames by P(virus)" in text and "Recent events" in text
    else:
        assert (
            "frames by P(virus)" not in text
        )  # the side column folds away; the Results tab has it
    check_snapshot(f"overview_{width}x{height}", text)


def test_results_tab_at_80x24() -> None:
    text = take((80, 24), keys=("2",))
    assert "frames by P(virus)" in text and "virus 370,749" in text
    check_snapshot("results_80x24", text)


def test_completion_view_at_80x24() -> None:
    text = take((80, 24), finished=True)
    assert "Run complete — exit 0" in text
    assert f"{scenario.OUT}/gut_contigs/prediction_results.txt" in text
    check_snapshot("completion_80x24", text)


def test_resizing_reflows_the_panels() -> None:
    async def resize() -> None:
        app = scripted_app(scenario.mid_run_events())
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot, app)
            panel = app.query_one("#worker-0", WorkerPanel)
            wide = panel.shown
            assert app.query_one("#side-col").display
            await pilot.resize_terminal(80, 24)
            await settle(pilot, app)
            narrow = panel.shown
            assert not app.screen.query_one("#side-col").region.width  # hidden at 80 columns
            assert len(narrow.splitlines()) > len(wide.splitlines())
            assert all(len(line) <= panel.size.width for line in narrow.splitlines())
            assert " ".join(narrow.split()).count("612 W") == 1
            await pilot.resize_terminal(160, 48)
            await settle(pilot, app)
            assert panel.shown == wide

    asyncio.run(resize())


def test_no_color_keeps_the_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    async def monochrome() -> None:
        app = scripted_app(scenario.mid_run_events())
        assert app.no_color
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            assert any(
                type(f).__name__ in ("Monochrome", "NoColor") for f in app.get_line_filters()
            )
            text = screen_text(app)
            assert "BUSY" in text and "█" in text and "▓" in text  # states in words, bars in glyphs

    asyncio.run(monochrome())
