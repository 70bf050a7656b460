"""The overall progress bar: frames done and in flight over the (estimated) total."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.ui.render.header import progress_text
from virnucpro_tui.ui.widgets.base import ViewWidget


class OverallProgress(ViewWidget):
    def build(self, width: int) -> Text:
        return progress_text(self.state.view, width)
