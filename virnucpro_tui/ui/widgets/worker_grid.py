"""The workers: one panel per worker in the view, added and removed as the view changes; full
panels when they all fit above the recent events, else one line per worker."""

from __future__ import annotations

from typing import Any

from textual.containers import Grid
from textual.reactive import reactive
from textual.widget import Widget

from virnucpro_tui.ui.render.worker import panel_height
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.worker_panel import WorkerPanel

RECENT_ROWS = 4  # the recent events below keep at least this many rows


class WorkerGrid(Grid):
    """One ``WorkerPanel`` per worker of the view (a resumed run may have fewer). Every worker's
    title and state stay on screen without scrolling: when the full panels would not all fit,
    each worker is one line (``compact``)."""

    compact = reactive(False)

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    def watch_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        for panel in self.query(WorkerPanel):
            panel.compact = compact

    def update_from_view(self) -> None:
        workers = self.state.view.workers
        panels = {panel.worker: panel for panel in self.query(WorkerPanel)}
        for n, panel in panels.items():
            if n not in workers:
                panel.remove()
        new = [
            WorkerPanel(self.state, n, id=f"worker-{n}") for n in sorted(workers) if n not in panels
        ]
        for panel in new:
            panel.compact = self.compact
        if new:
            self.mount_all(new)
        room = self._room()
        if room is not None:
            self.compact = self._full_height() > room

    def _room(self) -> int | None:
        """The rows the workers may take: their column's height less its other parts and the
        recent events' least rows (None before the first layout)."""
        scroll = self.parent
        column = scroll.parent if scroll is not None else None
        if not isinstance(column, Widget) or not column.size.height:
            return None
        others = sum(
            child.outer_size.height
            for child in column.query_children(Widget)
            if child is not scroll and child.id != "recent"
        )
        return column.size.height - others - RECENT_ROWS

    def _full_height(self) -> int:
        """The rows every worker's full panel would take (two to a row on a very wide screen)."""
        short = self.screen.has_class("-short")
        columns = 2 if self.screen.has_class("-very-wide") else 1
        chrome_rows, chrome_columns = (1, 2) if short else (2, 4)
        width = max(self.size.width // columns - chrome_columns - 1, 20)
        view, now = self.state.view, self.state.clock()
        heights = [
            panel_height(w, width, now, self.state.live) + chrome_rows
            for _, w in sorted(view.workers.items())
        ]
        rows = [max(heights[i : i + columns]) for i in range(0, len(heights), columns)]
        return sum(rows)
