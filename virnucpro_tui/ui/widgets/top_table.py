"""The best scores and their title."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from virnucpro_tui.ui.render.tables import Column, top_rows
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.base import TableWidget, ViewWidget


class TopTable(TableWidget):
    """The best scores: input sequences once a job is done, frames until then. ``compact``:
    the overview's short version (five rows)."""

    def __init__(self, state: DashboardState, compact: bool = False, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.compact = compact
        self.title = ""

    def rows(self) -> tuple[Sequence[Column], list[tuple[Text, ...]]]:
        self.title, columns, rows = top_rows(self.state.view, self.compact)
        return columns, rows


class TopTitle(ViewWidget):
    """What the best-scores table below it holds, and how a call is made (``compact``: short)."""

    def __init__(self, state: DashboardState, compact: bool = False, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.compact = compact

    def build(self, width: int) -> Text:
        return Text(top_rows(self.state.view, self.compact)[0])
