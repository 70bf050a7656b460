"""Virus/others counts and the score histogram."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from virnucpro_tui.ui.render.results import histogram_text, results_text
from virnucpro_tui.ui.render.text import join_lines
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.base import ViewWidget


class ResultsSummary(ViewWidget):
    """Virus/others counts and the score histogram."""

    def __init__(self, state: DashboardState, histogram_height: int = 8, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.histogram_height = histogram_height

    def build(self, width: int) -> Text:
        view = self.state.view
        counts = results_text(view, width)
        height = (
            self.histogram_height
            if self.screen.has_class("-tall")
            else min(self.histogram_height, 6)
        )
        chart = histogram_text(view.histogram, width, height)
        return join_lines([counts, Text(""), chart])
