"""The Results tab's sequence track: the top sequence picked with ↑/↓ (or j/k), drawn along its
length from its job's outputs (read in a thread: a sequence deep in a big output takes a
moment). Only finished inputs have tracks: their outputs are final."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType

from virnucpro_tui.pool import events as ev
from virnucpro_tui.report.scan import Track
from virnucpro_tui.ui.render.track import track_text
from virnucpro_tui.ui.state import DashboardState
from virnucpro_tui.ui.widgets.base import ViewWidget

LOADING = "reading its chunks from prediction_results.txt…"


class SequenceTrack(ViewWidget, can_focus=True):
    """One of the top sequences (``selected``), drawn along its length."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "move(1)", "Next sequence"),
        Binding("up,k", "move(-1)", "Previous sequence"),
    ]
    DEFAULT_CSS = "SequenceTrack { height: auto; } SequenceTrack:focus { background: $boost; }"

    def __init__(self, state: DashboardState, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.selected = 0
        self.tracks: dict[str, Track | None] = {}  # None: not found in any finished job
        self._asked: set[str] = set()

    def selected_id(self) -> str | None:
        top = self.state.view.top_sequences
        if not top:
            return None
        self.selected = min(self.selected, len(top) - 1)
        return top[self.selected][0]

    def build(self, width: int) -> Text:
        sid = self.selected_id()
        if sid is None:
            return Text(
                "Sequence tracks: once an input is done, pick one of its top sequences with "
                "↑/↓ here (Tab to focus).",
                style="dim",
            )
        n = len(self.state.view.top_sequences)
        head = Text(f"Track {self.selected + 1}/{n} (↑/↓ picks another): ", style="bold")
        if sid not in self.tracks:
            self._load(sid)
            return head + Text(f"{sid}: {LOADING}", style="dim")
        track = self.tracks[sid]
        if track is None:
            return head + Text(f"{sid}: not in the outputs of a finished input", style="dim")
        return head + Text("\n") + track_text(track, width)

    def action_move(self, step: int) -> None:
        top = self.state.view.top_sequences
        if top:
            self.selected = (self.selected + step) % len(top)
            self.update_from_view()

    def _job_dirs(self) -> list[Path]:
        jobs = self.state.view.jobs.values()
        return [Path(j.out_dir) for j in jobs if j.status == ev.JobStatus.DONE and j.out_dir]

    def _load(self, sid: str) -> None:
        if sid in self._asked:
            return
        self._asked.add(sid)
        self._read_track(sid, self._job_dirs())

    @work(thread=True, group="track")
    def _read_track(self, sid: str, job_dirs: list[Path]) -> None:
        from virnucpro_tui.report.lookup import find_track

        track = find_track(job_dirs, sid)
        self.app.call_from_thread(self._loaded, sid, track)

    def _loaded(self, sid: str, track: Track | None) -> None:
        self.tracks[sid] = track
        self.update_from_view()
