"""Layout snapshots: the screen as text, from a fixed event sequence with a fixed clock.

A change in layout shows up as a diff against ``snapshots/*.txt``. After an intended change,
regenerate them with ``VIRNUCPRO_UPDATE_SNAPSHOTS=1 pytest tests/ui/test_snapshots.py`` and review
the diff like code.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from tests.ui import scenario
from tests.ui.helpers import screen_text, scripted_app, settle
from virnucpro_tui.ui.render import JOB_COLUMNS
from virnucpro_tui.ui.widgets import JobTable, WorkerPanel

pytestmark = pytest.mark.ui

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


SIZES = [(80, 24), (120, 40), (200, 60)]


@pytest.mark.parametrize("size", SIZES)
def test_overview_layout(size: tuple[int, int]) -> None:
    text = take(size)
    width, height = size
    lines = rows(text)
    assert len(lines) == height and all(len(line) <= width for line in lines)
    assert "virnucpro-tui · RUNNING · run /scratch/alice/gut-virome/run1" in lines[0]
    assert "ETA 29:04" in text and "frames/s" in text and "46.1%" in text
    assert "1,546,240/~3,351,511 frames" in text  # the second input's frames are an estimate
    assert "q Quit" in lines[-1] and "p Pause/resume" in lines[-1] and "? Help" in lines[-1]
    assert "worker 0 · GPU 0 · NVIDIA H200 · BUSY" in text
    assert "Job queue" in text and "Recent events" in text
    recent = lines[lines.index(next(x for x in lines if "Recent events" in x)) + 1]
    assert "busy on gut_contigs #756 (2,048 frames)" in recent  # the newest event first
    if width >= 120:  # wide: every GPU, the job queue and the results side by side
        assert "worker 1 · GPU 1 · NVIDIA H200 · BUSY" in text
        assert "frames by P(virus)" in text and "Top frames so far" in text
    else:
        assert (
            "frames by P(virus)" not in text
        )  # the side column folds away; the Results tab has it
    check_snapshot(f"overview_{width}x{height}", text)


def test_recent_events_use_the_width_and_the_height() -> None:
    """At 200 columns every recent event is whole; the list fills the rows below the panels;
    at 120 columns what does not fit ends with an ellipsis."""
    wide = rows(take((200, 60)))
    start = next(i for i, line in enumerate(wide) if "Recent events" in line) + 1
    recent = [line[:126].rstrip() for line in wide[start:-1]]
    assert len(recent) >= 30 and all(recent)  # every row down to the footer holds an event
    assert "cache cleared (periodic): 5.0 GiB freed, reserved 74.0 GiB -> 69.0 GiB" in "\n".join(
        recent
    )
    assert not any(line.endswith("…") for line in recent)
    narrow = rows(take((120, 40)))
    start = next(i for i, line in enumerate(narrow) if "Recent events" in line) + 1
    cut = [line[:72].rstrip() for line in narrow[start:-1] if len(line[:72].rstrip()) >= 70]
    assert cut and all(line.endswith("…") for line in cut)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_tables_never_cut_a_column_without_an_ellipsis(size: tuple[int, int]) -> None:
    """Every header and cell of the job queue on screen is whole or ends with "…" (never
    "Outp" or "Vir"); columns that do not fit at all are left out, the least useful first."""

    async def table() -> tuple[str, list[list[str]]]:
        app = scripted_app(scenario.finished_events())
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            await pilot.press("escape")  # the completion view: back to the dashboard
            await settle(pilot, app)
            jobs = app.query_one(JobTable)
            return jobs.shown, [jobs.row_text(job) for job in ("gut_contigs", "phage_reads")]

    shown, cells = asyncio.run(table())
    whole = {c.header for c in JOB_COLUMNS} | {cell for row in cells for cell in row}
    pieces = [piece for line in shown.splitlines() for piece in re.split(r"\s{2,}", line.strip())]
    assert len(pieces) >= 3 * 4  # a header and two rows of at least four columns
    assert all(piece in whole or piece.endswith("…") for piece in pieces), pieces
    assert "Job" in pieces and "gut_contigs" in pieces and "3,288,604/3,288,604" in pieces


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
            await pilot.resize_terminal(80, 60)  # tall enough for the full panels
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


def test_the_results_table_fits_the_width_left_by_the_scrollbar() -> None:
    """At 80 columns the Results tab scrolls: its scrollbar takes two columns, and the table is
    fitted to what is left (short headers; before, 0.9998 showed as 0.999, cut silently)."""
    lines = rows(take((80, 30), keys=("escape", "2"), finished=True))
    header = next(line for line in lines if "Sequence" in line)
    assert header.split()[:5] == ["#", "Sequence", "Call", "max", "P(virus)"]
    first = next(line for line in lines if line.strip().startswith("1  contig_"))
    assert first.split()[1:] == ["contig_00001", "virus", "0.9998"]
