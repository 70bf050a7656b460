"""The dashboard's three tabs (overview, results, log), composed from the widgets."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static, TabbedContent, TabPane

from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets import (
    EventLog,
    JobTable,
    RecentEvents,
    ResultsSummary,
    SequenceTrack,
    TopTable,
    TopTitle,
    WorkerGrid,
)


def dashboard_tabs(state: DashboardState) -> ComposeResult:
    """Overview (jobs, workers, recent events, a results column), Results and Log."""
    with TabbedContent(initial="overview", id="tabs"):
        with TabPane("Overview", id="overview"):
            yield Static("Job queue", classes="section-title first")
            with VerticalScroll(id="jobs-scroll"):
                yield JobTable(state, id="jobs")
            with Horizontal(id="overview-row"):
                with Vertical(id="main-col"):
                    with VerticalScroll(id="workers-scroll"):
                        yield WorkerGrid(state, id="workers")
                    yield Static("Recent events", classes="section-title")
                    yield RecentEvents(state, id="recent")
                with VerticalScroll(id="side-col"):
                    yield ResultsSummary(state, histogram_height=6, id="side-results")
                    yield TopTitle(
                        state, compact=True, id="side-top-title", classes="section-title"
                    )
                    yield TopTable(state, compact=True, id="side-top")
        with TabPane("Results", id="results"), VerticalScroll(id="results-col"):
            yield ResultsSummary(state, histogram_height=10, id="results-summary")
            yield TopTitle(state, id="top-title", classes="section-title")
            yield TopTable(state, id="top")
            yield Static("Sequence track", classes="section-title")
            yield SequenceTrack(state, id="track")
        with TabPane("Log", id="log"):
            yield EventLog(state, id="event-log")
