"""The dashboard's widgets. Each one renders from the app's RunView (see ``render.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Select, Static

from virnucpro_tui.pool.events import Event, WorkerState
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import render

if TYPE_CHECKING:
    from virnucpro_tui.ui.app import VirnucproApp

LOG_LINES_KEPT = 10_000


class ViewWidget(Widget):
    """Shows text built from the RunView; repaints only when that text changes."""

    DEFAULT_CSS = "ViewWidget { height: auto; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._text = Text()

    @property
    def dashboard(self) -> VirnucproApp:
        return cast("VirnucproApp", self.app)

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

    def render(self) -> Text:
        return self._text

    def on_mount(self) -> None:
        self.update_from_view()

    def on_resize(self) -> None:
        self._text = Text()
        self.update_from_view()
        self.refresh(layout=True)


class HeaderBar(ViewWidget):
    def build(self, width: int) -> Text:
        app = self.dashboard
        return render.header_text(app.view, width, app.clock(), app.mode)


class DemoBanner(Static):
    """Always on screen during a demo run."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(render.DEMO_BANNER, **kwargs)


class OverallProgress(ViewWidget):
    def build(self, width: int) -> Text:
        return render.progress_text(self.dashboard.view, width)


class WorkerPanel(ViewWidget):
    """One worker: device, state, models, memory, speed, shard, cache."""

    def __init__(self, worker: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker = worker
        self.title_text = Text()

    def build(self, width: int) -> Text:
        app = self.dashboard
        w = app.view.workers[self.worker]
        self.title_text = render.worker_title(w)
        self.border_title = self.title_text
        for state in WorkerState:
            self.set_class(w.state == state, f"-{state}")
        return render.worker_text(w, width, app.clock(), app.run_is_live)


class ResultsSummary(ViewWidget):
    """Virus/others counts and the score histogram."""

    def __init__(self, histogram_height: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.histogram_height = histogram_height

    def build(self, width: int) -> Text:
        view = self.dashboard.view
        counts = render.results_text(view, width)
        height = (
            self.histogram_height
            if self.screen.has_class("-tall")
            else min(self.histogram_height, 6)
        )
        chart = render.histogram_text(view.histogram, width, height)
        return render.join_lines([counts, Text(""), chart])


class RecentEvents(ViewWidget):
    """The latest log lines, newest first (the full, filterable log is on the Log tab)."""

    def __init__(self, lines: int = 40, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines = lines

    def build(self, width: int) -> Text:
        view = self.dashboard.view
        recent = list(view.log)[-self.lines :]
        if not recent:
            return Text("no events yet", style="dim")
        out = []
        for event in reversed(recent):
            line = render.log_text(event)
            line.truncate(width, overflow="ellipsis")
            out.append(line)
        return render.join_lines(out)


class JobTable(DataTable):
    """The job queue: one row per input."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", show_cursor=False, zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple[str, ...]] = {}
        for name in render.JOB_COLUMNS:
            self.add_column(name, key=name)

    def sync(self, view: RunView) -> None:
        for job in view.jobs.values():
            cells = render.job_cells(job, view)
            plain = tuple(c.plain for c in cells)
            if self._shown.get(job.name) == plain:
                continue
            if job.name not in self._shown:
                self.add_row(*cells, key=job.name)
            else:
                for column, cell in zip(render.JOB_COLUMNS, cells, strict=True):
                    self.update_cell(job.name, column, cell, update_width=True)
            self._shown[job.name] = plain

    def row_text(self, job: str) -> list[str]:
        return [str(getattr(c, "plain", c)) for c in self.get_row(job)]


class TopTable(DataTable):
    """The best scores: input sequences once a job is done, frames until then."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(zebra_stripes=True, **kwargs)
        self._shown: tuple[Any, ...] = ()

    def sync(self, view: RunView) -> str:
        title, columns, rows = render.top_rows(view)
        if (title, rows) != self._shown:
            self._shown = (title, rows)
            self.clear(columns=True)
            for column in columns:
                self.add_column(column, key=column or "call")
            for row in rows:
                self.add_row(*row)
        return title


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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._workers = 0

    @property
    def dashboard(self) -> VirnucproApp:
        return cast("VirnucproApp", self.app)

    @staticmethod
    def _worker_options(count: int) -> list[tuple[str, Any]]:
        return [("All workers", "all"), ("Run (orchestrator)", "run")] + [
            (f"Worker {n}", n) for n in range(count)
        ]

    def filters(self) -> tuple[Any, Any]:
        worker = self.query_one("#log-worker", Select).value
        group = self.query_one("#log-group", Select).value
        return (None if worker == "all" else worker), (None if group == "all" else group)

    def sync_workers(self, view: RunView) -> None:
        count = max(view.workers, default=-1) + 1
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
        view = self.dashboard.view
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

    @property
    def dashboard(self) -> VirnucproApp:
        return cast("VirnucproApp", self.app)

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
