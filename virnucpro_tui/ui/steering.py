"""What the steering keys do to a run (stop, abandon, pause, clear caches, add an input) and when
they may: the app binds the keys, this holds the rules and says what to tell the user."""

from __future__ import annotations

from pathlib import Path

from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import notices
from virnucpro_tui.ui.controllers import RunController
from virnucpro_tui.ui.notices import Notice
from virnucpro_tui.ui.outcome import RunOutcome
from virnucpro_tui.ui.state import Mode

STEERING = ("pause", "clear_caches", "add_input")  # the keys that act on a live run
DIALOG_BLOCKED = (*STEERING, "focus_log", "help", "show_tab", "summary", "quit_run")


class Steering:
    """The steering of one run through its controller; every method answers with a notice."""

    def __init__(
        self, controller: RunController, view: RunView, mode: Mode, outcome: RunOutcome
    ) -> None:
        self.controller, self.view, self.mode, self.outcome = controller, view, mode, outcome
        self.want_paused = False  # what the user asked last (the view says what the run did)

    @property
    def allowed(self) -> bool:
        """p, c and a act: a live run this app drives, not over, not stopping."""
        view = self.view
        ended = self.outcome.over or view.status.finished or view.dead
        return not (self.controller.read_only or ended or self.mode.stopping)

    def offers(self, action: str, dialog_open: bool) -> bool:
        """Whether the app's key for ``action`` works now (the footer shows only those)."""
        if action in DIALOG_BLOCKED and dialog_open:
            return False  # a dialog is open: its own keys apply
        if action in STEERING:
            return self.allowed
        if action == "refuse_steering":
            return not self.allowed
        return self.outcome.over if action == "summary" else True

    def refusal(self) -> Notice:
        return notices.READ_ONLY if self.controller.read_only else notices.NOT_GOING

    def stop(self, abandon: bool) -> Notice | None:
        """Stop: the shards in flight finish; ``abandon``: they are dropped (the second ask)."""
        if self.mode.abandoning:
            return None
        self.mode.stopping, self.mode.abandoning = True, abandon
        self.controller.stop(abandon=abandon)
        return notices.ABANDONING if abandon else notices.STOPPING

    def toggle_pause(self) -> Notice:
        self.want_paused = not self.want_paused
        self.controller.set_paused(self.want_paused)
        return notices.pausing(self.want_paused)

    def clear_caches(self) -> Notice:
        self.controller.clear_caches()
        return notices.CLEARING

    def add_input(self, path: Path | None) -> Notice | None:
        if path is None or self.outcome.over:
            return None
        self.controller.add_input(path)
        return notices.adding(path)
