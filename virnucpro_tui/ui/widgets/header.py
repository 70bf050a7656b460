"""The header bar: status, run directory, inputs, timing and speed."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.ui.render.header import header_text
from virnucpro_tui.ui.widgets.base import ViewWidget


class HeaderBar(ViewWidget):
    def build(self, width: int) -> Text:
        state = self.state
        return header_text(state.view, width, state.clock(), state.mode)
