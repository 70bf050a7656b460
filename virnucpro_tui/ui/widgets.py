"""The dashboard's widgets. Each renders from the ``DashboardState`` it is given (the app's
RunView, mode and clock) through the pure functions of ``render.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Select, Static

from virnucpro_tui.pool.events import Event, WorkerState
from virnucpro_tui.ui import render
from virnucpro_tui.ui.render import DashboardState

LOG_LINES_KEPT = 10_000


class ViewWidget(Widget):
    """Shows what ``build`` makes from the dashboard's state; repaints only when it changes."""

    DEFAULT_CSS = "ViewWidget { height: auto; }"

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._text = Text()

    def build(self, width: int) -> Text:
        raise NotImplementedError

    def text_width(self) -> int:
        return self.size.width or max(self.app.size.width - 4, 20)

    def update_from_view(self) -> None:
        text = self.build(self.text_width())
        if text == self._text:
            return
        relayout = text.plain.count("\n") != self._text.plain.count("\n")
        self._text = text
        self.refresh(layout=relayout)

    @property
    def shown(self) -> str:
        """The plain text on show (what the tests read)."""
        return self._text.plain

    def render(self) -> RenderableType:
        return self._text

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """The height of what ``build`` makes at this width now (the text on show may have been
        built before the latest events, or for another width)."""
        return self.build(width).plain.count("\n") + 1

    def on_mount(self) -> None:
        self.update_from_view()

    def on_resize(self) -> None:
        self._text = Text()
        self.update_from_view()
        self.refresh(layout=True)


class HeaderBar(ViewWidget):
    def build(self, width: int) -> Text:
        state = self.state
        return render.header_text(state.view, width, state.clock(), state.mode)


class DemoBanner(Static):
    """Always on screen during a demo run."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(render.DEMO_BANNER, **kwargs)


class OverallProgress(ViewWidget):
    def build(self, width: int) -> Text:
        return render.progress_text(self.state.view, width)


class WorkerPanel(ViewWidget):
    """One worker: device, state, models, memory, speed, shard, cache."""

    def __init__(self, state: DashboardState, worker: int, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.worker = worker
        self.title_text = Text()

    def build(self, width: int) -> Text:
        w = self.state.view.workers.get(self.worker)
        if w is None:  # a resumed run has fewer workers: the panel goes on the next repaint
            return Text()
        self.title_text = render.worker_title(w)
        self.border_title = self.title_text
        for worker_state in WorkerState:
            self.set_class(w.state == worker_state and not w.gone, f"-{worker_state}")
        self.set_class(w.gone, "-gone")
        return render.worker_text(w, width, self.state.clock(), self.state.live)


class ResultsSummary(ViewWidget):
    """Virus/others counts and the score histogram."""

    def __init__(self, state: DashboardState, histogram_height: int = 8, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.histogram_height = histogram_height

    def build(self, width: int) -> Text:
        view = self.state.view
        counts = render.results_text(view, width)
        height = (
            self.histogram_height
            if self.screen.has_class("-tall")
            else min(self.histogram_height, 6)
        )
        chart = render.histogram_text(view.histogram, width, height)
        return render.join_lines([counts, Text(""), chart])


class RecentEvents(ViewWidget):
    """The latest events, newest first, as many as the widget's height holds, each cut to its
    width with an ellipsis (the full, filterable log is on the Log tab)."""

    DEFAULT_CSS = "RecentEvents { height: 1fr; min-height: 4; }"

    def build(self, width: int) -> Text:
        rows = max(self.size.height, 1)
        recent = list(self.state.view.log)[-rows:]
        if not recent:
            return Text("no events yet", style="dim")
        out = []
        for event in reversed(recent):
            line = render.recent_text(event)
            line.truncate(width, overflow="ellipsis")
            out.append(line)
        return render.join_lines(out)


class TableWidget(ViewWidget):
    """A table fitted to the widget's width (``render.fit_table``)."""

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self._columns: Sequence[render.Column] = ()
        self._rows: list[tuple[Text, ...]] = []

    def rows(
        self,
    ) -> tuple[list[render.Column] | tuple[render.Column, ...], list[tuple[Text, ...]]]:
        raise NotImplementedError

    def build(self, width: int) -> Text:
        self._columns, self._rows = self.rows()
        return Text(render.plain(render.fit_table(self._columns, self._rows, width), width))

    def render(self) -> RenderableType:
        """Fitted to the width the widget has now (a scrollbar may have taken two columns)."""
        return render.fit_table(self._columns, self._rows, self.size.width or self.text_width())

    def row_text(self, key: str | int) -> list[str]:
        """A row's cells in full (uncut), by its first cell's text or its index."""
        for i, row in enumerate(self._rows):
            if key == i or row[0].plain == key:
                return [cell.plain for cell in row]
        raise KeyError(key)


class JobTable(TableWidget):
    """The job queue: one row per input."""

    def rows(self) -> tuple[tuple[render.Column, ...], list[tuple[Text, ...]]]:
        view = self.state.view
        return render.JOB_COLUMNS, [render.job_cells(job, view) for job in view.jobs.values()]


class TopTable(TableWidget):
    """The best scores: input sequences once a job is done, frames until then. ``compact``:
    the overview's short version (a short title, five rows)."""

    def __init__(self, state: DashboardState, compact: bool = False, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.compact = compact
        self.title = ""

    def rows(self) -> tuple[Any, list[tuple[Text, ...]]]:
        self.title, columns, rows = render.top_rows(self.state.view, self.compact)
        return columns, rows


class EventLog(Vertical):
    """Every notable event, filterable by worker and kind."""

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
                (label, key) for key, label in render.LOG_GROUP_LABELS.items()
            ]
            yield Select(groups, value="all", allow_blank=False, compact=True, id="log-group")
        yield EventLines(id="log-lines")

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._workers = 0

    @staticmethod
    def _worker_options(count: int) -> list[tuple[str, Any]]:
        return [("All workers", "all"), ("Run (orchestrator)", "run")] + [
            (f"Worker {n}", n) for n in range(count)
        ]

    def filters(self) -> tuple[Any, Any]:
        worker = self.query_one("#log-worker", Select).value
        group = self.query_one("#log-group", Select).value
        return (None if worker == "all" else worker), (None if group == "all" else group)

    def sync_workers(self) -> None:
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

    def add(self, events: list[Event]) -> None:
        worker, group = self.filters()
        self.query_one(EventLines).extend(
            [e for e in events if render.log_matches(e, worker, group)]
        )

    def rebuild(self) -> None:
        worker, group = self.filters()
        view = self.state.view
        self.query_one(EventLines).replace(
            [e for e in view.log if render.log_matches(e, worker, group)]
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.rebuild()

    def shown_lines(self) -> list[str]:
        return self.query_one(EventLines).plain_lines()


class EventLines(ScrollView, can_focus=True):
    """The log's lines, drawn lazily: only the rows on screen are ever rendered, so ten thousand
    events (an attach to a long run) cost nothing until scrolled to."""

    DEFAULT_CSS = "EventLines { height: 1fr; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[Event] = []
        self._strips: dict[int, Strip] = {}
        self._widest = 0

    def replace(self, events: list[Event]) -> None:
        self.events, self._strips, self._widest = [], {}, 0
        self.extend(events, follow=True)

    def extend(self, events: list[Event], follow: bool | None = None) -> None:
        follow = self.is_vertical_scroll_end if follow is None else follow
        events = events[-LOG_LINES_KEPT:]  # a long backlog: only the newest lines are kept anyway
        self.events.extend(events)
        if len(self.events) > LOG_LINES_KEPT:
            del self.events[: len(self.events) - LOG_LINES_KEPT]
            self._strips.clear()
        self._widest = max([self._widest, *(cell_len(render.log_text(e).plain) for e in events)])
        self.virtual_size = Size(self._widest, len(self.events))
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index, width = scroll_y + y, self.size.width
        if index >= len(self.events):
            return Strip.blank(width, self.rich_style)
        strip = self._strips.get(index)
        if strip is None:
            if len(self._strips) > 4 * LOG_LINES_KEPT:
                self._strips.clear()
            text = render.log_text(self.events[index])
            strip = self._strips[index] = Strip(text.render(self.app.console), cell_len(text.plain))
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def plain_lines(self) -> list[str]:
        return [render.log_text(e).plain for e in self.events]
