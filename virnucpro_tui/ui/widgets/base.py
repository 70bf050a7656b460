"""The base of every dashboard widget: it shows what ``build`` makes from the dashboard's state
(the app's RunView, mode and clock) and repaints only when that changes. The app calls
``update_from_view`` on every one of them on its refresh tick: state flows down, never up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from virnucpro_tui.ui.render.tables import Column, fit_table
from virnucpro_tui.ui.render.text import plain
from virnucpro_tui.ui.state import DashboardState


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


class TableWidget(ViewWidget):
    """A table fitted to the widget's width (``render.tables.fit_table``)."""

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self._columns: Sequence[Column] = ()
        self._rows: list[tuple[Text, ...]] = []

    def rows(self) -> tuple[Sequence[Column], list[tuple[Text, ...]]]:
        raise NotImplementedError

    def build(self, width: int) -> Text:
        self._columns, self._rows = self.rows()
        return Text(plain(fit_table(self._columns, self._rows, width), width))

    def render(self) -> RenderableType:
        """Fitted to the width the widget has now (a scrollbar may have taken two columns)."""
        return fit_table(self._columns, self._rows, self.size.width or self.text_width())

    def row_text(self, key: str | int) -> list[str]:
        """A row's cells in full (uncut), by its first cell's text or its index."""
        for i, row in enumerate(self._rows):
            if key == i or row[0].plain == key:
                return [cell.plain for cell in row]
        raise KeyError(key)
