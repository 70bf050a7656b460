"""How a run ended, as far as the dashboard is concerned, and the exit code it leaves with."""

from __future__ import annotations

from virnucpro_tui.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from virnucpro_tui.pool.events import RunStatus
from virnucpro_tui.run.view import RunView


class RunOutcome:
    """The run's end: its exit code and error once known (``settle``), and the app's exit code."""

    def __init__(self, view: RunView, read_only: bool) -> None:
        self.view = view
        self.read_only = read_only
        self.code: int | None = None
        self.error: str | None = None

    @property
    def over(self) -> bool:
        return self.code is not None

    def settle(self, code: int, error: str | None) -> bool:
        """Record the end (the first one counts); False when it was already recorded. A run
        that ended without its run_done event takes its status from the exit code."""
        if self.code is not None:
            return False
        self.code, self.error = code, error
        if not self.view.status.finished:
            self.view.status = {
                EXIT_OK: RunStatus.COMPLETE,
                EXIT_INTERRUPTED: RunStatus.INTERRUPTED,
            }.get(code, RunStatus.FAILED)
        return True

    def exit_code(self) -> int:
        """An attached dashboard exits 0 unless the run died; a driving one with the run's code."""
        view = self.view
        if self.read_only:
            return EXIT_ERROR if view.dead else EXIT_OK
        if self.code is not None:
            return self.code
        return view.exit_code if view.exit_code is not None else EXIT_INTERRUPTED

    def summary_title(self, status: str) -> str:
        """The completion dialog's title: the status, and the exit code the app will leave with."""
        exit_part = "" if self.read_only else f" — exit {self.exit_code()}"
        return f"Run {status.lower()}{exit_part}"
