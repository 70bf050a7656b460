"""One worker's panel: device, state, models, memory, speed, shard, cache; or, when the full
panels do not fit (``WorkerGrid`` decides), the same worker in one line."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive

from virnucpro_tui.pool.events import WorkerState
from virnucpro_tui.ui.render.worker import worker_row, worker_text, worker_title
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.base import ViewWidget


class WorkerPanel(ViewWidget):
    """One worker: device, state, models, memory, speed, shard, cache (``compact``: one line,
    set by the ``WorkerGrid`` it is in)."""

    compact = reactive(False)

    def __init__(self, state: DashboardState, worker: int, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.worker = worker
        self.title_text = Text()

    def watch_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        self.update_from_view()

    def build(self, width: int) -> Text:
        w = self.state.view.workers.get(self.worker)
        if w is None:  # a resumed run has fewer workers: the panel goes on the next repaint
            return Text()
        title = worker_title(w)
        if title != self.title_text:  # setting a border title repaints, even the same one
            self.title_text = title
            self.border_title = title
        for worker_state in WorkerState:
            self.set_class(w.state == worker_state and not w.gone, f"-{worker_state}")
        self.set_class(w.gone, "-gone")
        now, live = self.state.clock(), self.state.live
        rate = self.state.view.worker_rate(self.worker, now) if live else 0.0
        if self.compact:
            return worker_row(w, width, now, live, rate)
        return worker_text(w, width, now, live, rate)
