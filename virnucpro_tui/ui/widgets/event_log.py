"""The Log tab: every notable event, filterable by worker and kind."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Select

from virnucpro_tui.ui.render.log import LOG_GROUP_LABELS, log_matches
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.event_lines import EventLines


class EventLog(Vertical):
    """Every notable event, filterable by worker and kind. It follows the view on the app's
    refresh tick: the events logged since the last tick, and the workers the filter offers."""

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._workers = 0
        self._logged = 0  # the view's count of logged events when this log last caught up

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-filters"):
            yield Select(
                self._worker_options(0),
                value="all",
                allow_blank=False,
                compact=True,
                id="log-worker",
            )
            groups = [("All kinds", "all")] + [
                (label, key) for key, label in LOG_GROUP_LABELS.items()
            ]
            yield Select(groups, value="all", allow_blank=False, compact=True, id="log-group")
        yield EventLines(id="log-lines")

    @staticmethod
    def _worker_options(count: int) -> list[tuple[str, Any]]:
        return [("All workers", "all"), ("Run (orchestrator)", "run")] + [
            (f"Worker {n}", n) for n in range(count)
        ]

    def filters(self) -> tuple[Any, Any]:
        worker = self.query_one("#log-worker", Select).value
        group = self.query_one("#log-group", Select).value
        return (None if worker == "all" else worker), (None if group == "all" else group)

    def update_from_view(self) -> None:
        self._sync_workers()
        view = self.state.view
        new = view.logged - self._logged
        if new <= 0:
            return
        self._logged = view.logged
        log = list(view.log)
        worker, group = self.filters()
        self.query_one(EventLines).extend(
            [e for e in log[max(len(log) - new, 0) :] if log_matches(e, worker, group)]
        )

    def _sync_workers(self) -> None:
        count = max(self.state.view.workers, default=-1) + 1
        if count == self._workers:
            return
        self._workers = count
        select = self.query_one("#log-worker", Select)
        value = select.value
        select.set_options(self._worker_options(count))
        select.value = (
            value
            if value in ("all", "run") or (isinstance(value, int) and value < count)
            else "all"
        )

    def rebuild(self) -> None:
        worker, group = self.filters()
        view = self.state.view
        self._logged = view.logged
        self.query_one(EventLines).replace([e for e in view.log if log_matches(e, worker, group)])

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.rebuild()

    def shown_lines(self) -> list[str]:
        return self.query_one(EventLines).plain_lines()
