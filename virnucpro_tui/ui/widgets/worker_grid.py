"""The workers' panels: one per worker in the view, added and removed as the view changes."""

from __future__ import annotations

from typing import Any

from textual.containers import Grid

from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.worker_panel import WorkerPanel


class WorkerGrid(Grid):
    """One ``WorkerPanel`` per worker of the view (a resumed run may have fewer)."""

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    def update_from_view(self) -> None:
        workers = self.state.view.workers
        panels = {panel.worker: panel for panel in self.query(WorkerPanel)}
        for n, panel in panels.items():
            if n not in workers:
                panel.remove()
        new = [
            WorkerPanel(self.state, n, id=f"worker-{n}") for n in sorted(workers) if n not in panels
        ]
        if new:
            self.mount_all(new)
