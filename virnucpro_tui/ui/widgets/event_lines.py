"""The log's lines, drawn lazily."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from virnucpro_tui.pool.events import Event
from virnucpro_tui.ui.render.log import log_text

LOG_LINES_KEPT = 10_000


class EventLines(ScrollView, can_focus=True):
    """The log's lines, drawn lazily: only the rows on screen are ever rendered, so ten thousand
    events (an attach to a long run) cost nothing until scrolled to."""

    DEFAULT_CSS = "EventLines { height: 1fr; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[Event] = []
        self._strips: dict[int, Strip] = {}
        self._widest = 0

    def replace(self, events: list[Event]) -> None:
        self.events, self._strips, self._widest = [], {}, 0
        self.extend(events, follow=True)

    def extend(self, events: list[Event], follow: bool | None = None) -> None:
        follow = self.is_vertical_scroll_end if follow is None else follow
        events = events[-LOG_LINES_KEPT:]  # a long backlog: only the newest lines are kept anyway
        self.events.extend(events)
        if len(self.events) > LOG_LINES_KEPT:
            del self.events[: len(self.events) - LOG_LINES_KEPT]
            self._strips.clear()
        self._widest = max([self._widest, *(cell_len(log_text(e).plain) for e in events)])
        self.virtual_size = Size(self._widest, len(self.events))
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index, width = scroll_y + y, self.size.width
        if index >= len(self.events):
            return Strip.blank(width, self.rich_style)
        strip = self._strips.get(index)
        if strip is None:
            if len(self._strips) > 4 * LOG_LINES_KEPT:
                self._strips.clear()
            text = log_text(self.events[index])
            strip = self._strips[index] = Strip(text.render(self.app.console), cell_len(text.plain))
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def plain_lines(self) -> list[str]:
        return [log_text(e).plain for e in self.events]
