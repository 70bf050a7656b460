"""What every widget renders from: the run's view, the app's mode and its clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from virnucpro_tui.run.view import RunView


@dataclass
class Mode:
    """What the app knows beyond the events: how it is attached and what the user asked."""

    read_only: bool = False
    stopping: bool = False
    abandoning: bool = False
    over: bool = False  # the run has ended (or never started), as far as the app is concerned
    owner: str | None = None  # attach: "pid 1234 on host"
    waiting_for: str | None = None  # attach: the events file, until it has events
    resume_command: str | None = None  # the command that resumes the run, when known


@dataclass
class DashboardState:
    """What every widget renders from: the run's view, the app's mode and its clock. The app
    owns one and hands it to each widget it composes."""

    view: RunView
    mode: Mode
    clock: Callable[[], float]

    @property
    def live(self) -> bool:
        """The run is going and the app still follows it."""
        return self.view.live and not self.mode.over
