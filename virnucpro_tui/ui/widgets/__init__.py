"""The dashboard's widgets, one module each. Each renders from the ``DashboardState`` it is
given (the app's RunView, mode and clock) through the pure functions of ``ui/render/``, and
follows it through ``update_from_view``, called on the app's refresh tick."""

from __future__ import annotations

from virnucpro_tui.ui.widgets.base import TableWidget, ViewWidget
from virnucpro_tui.ui.widgets.demo_banner import DemoBanner
from virnucpro_tui.ui.widgets.event_lines import EventLines
from virnucpro_tui.ui.widgets.event_log import EventLog
from virnucpro_tui.ui.widgets.header import HeaderBar
from virnucpro_tui.ui.widgets.job_table import JobTable
from virnucpro_tui.ui.widgets.progress import OverallProgress
from virnucpro_tui.ui.widgets.recent_events import RecentEvents
from virnucpro_tui.ui.widgets.results_summary import ResultsSummary
from virnucpro_tui.ui.widgets.sequence_track import SequenceTrack
from virnucpro_tui.ui.widgets.top_table import TopTable, TopTitle
from virnucpro_tui.ui.widgets.worker_grid import WorkerGrid
from virnucpro_tui.ui.widgets.worker_panel import WorkerPanel

__all__ = [
    "DemoBanner",
    "EventLines",
    "EventLog",
    "HeaderBar",
    "JobTable",
    "OverallProgress",
    "RecentEvents",
    "ResultsSummary",
    "SequenceTrack",
    "TableWidget",
    "TopTable",
    "TopTitle",
    "ViewWidget",
    "WorkerGrid",
    "WorkerPanel",
]
