"""The overview's latest events."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.ui.render.log import recent_text
from virnucpro_tui.ui.render.text import join_lines
from virnucpro_tui.ui.widgets.base import ViewWidget


class RecentEvents(ViewWidget):
    """The latest events, newest first, as many as the widget's height holds, each cut to its
    width with an ellipsis (the full, filterable log is on the Log tab)."""

    DEFAULT_CSS = "RecentEvents { height: 1fr; min-height: 4; }"

    def build(self, width: int) -> Text:
        rows = max(self.size.height, 1)
        recent = list(self.state.view.log)[-rows:]
        if not recent:
            return Text("no events yet", style="dim")
        out = []
        for event in reversed(recent):
            line = recent_text(event)
            line.truncate(width, overflow="ellipsis")
            out.append(line)
        return join_lines(out)
