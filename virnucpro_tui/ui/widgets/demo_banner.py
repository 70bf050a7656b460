"""The demo notice: on screen for the whole of a demo run."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from virnucpro_tui.ui.render.results import DEMO_BANNER
from virnucpro_tui.ui.state import DashboardState


class DemoBanner(Static):
    """Always on screen during a demo run (shown once the view says the run is a demo)."""

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(DEMO_BANNER, **kwargs)
        self.state = state

    def update_from_view(self) -> None:
        self.display = self.state.view.demo
