"""One worker's panel: device, state, models, memory, speed, shard, cache."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from virnucpro_tui.pool.events import WorkerState
from virnucpro_tui.ui.render.worker import worker_text, worker_title
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.base import ViewWidget


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
        title = worker_title(w)
        if title != self.title_text:  # setting a border title repaints, even the same one
            self.title_text = title
            self.border_title = title
        for worker_state in WorkerState:
            self.set_class(w.state == worker_state and not w.gone, f"-{worker_state}")
        self.set_class(w.gone, "-gone")
        now = self.state.clock()
        rate = self.state.view.worker_rate(self.worker, now) if self.state.live else 0.0
        return worker_text(w, width, now, self.state.live, rate)
