"""The dashboard: one Textual app for a live run, an attached one (read-only) or a scripted one.

What it is connected to is a ``RunController`` (``controllers.py``). A live run's orchestrator
runs in a Textual thread worker; events reach the app as messages and fold into one RunView; a
4 Hz timer repaints the widgets from it (state flows down: each widget follows the view through
``update_from_view``). The app itself holds the composition, the key bindings and the routing of
messages; what the toasts say is ``notices.py``, how the run ended ``outcome.py``. Starting it
from the command line (signals, the outcome printed afterwards) is ``launch.py``'s business.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Footer, TabbedContent

from virnucpro_tui.errors import EXIT_ERROR, EXIT_OK
from virnucpro_tui.pool.events import Event, RunPaused, RunResumed
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import notices
from virnucpro_tui.ui.controllers import RunController
from virnucpro_tui.ui.messages import (
    EarlierResults,
    EventBatch,
    EventMessage,
    OwnerChanged,
    ProcessGone,
    RunFinished,
)
from virnucpro_tui.ui.notices import READ_ONLY_NOTICE, Notice, report_notice
from virnucpro_tui.ui.outcome import RunOutcome
from virnucpro_tui.ui.render.header import run_status
from virnucpro_tui.ui.render.results import completion_text
from virnucpro_tui.ui.screens import (
    AddInputScreen,
    CompletionScreen,
    ConfirmQuitScreen,
    HelpScreen,
    help_text,
)
from virnucpro_tui.ui.state import DashboardState, Mode
from virnucpro_tui.ui.steering import Steering
from virnucpro_tui.ui.tabs import dashboard_tabs
from virnucpro_tui.ui.widgets import (
    DemoBanner,
    EventLines,
    EventLog,
    HeaderBar,
    OverallProgress,
    ViewWidget,
    WorkerGrid,
)

__all__ = ["PROG", "READ_ONLY_NOTICE", "VirnucproApp"]

PROG = "virnucpro-tui"
LOG_SIZE = 10_000  # events kept for the log (hours of a busy 8-GPU run without the telemetry)
FOLLOWERS = (ViewWidget, WorkerGrid, EventLog, DemoBanner)  # the widgets that follow the view


class VirnucproApp(App[int]):
    """One dashboard for a live, attached or scripted run (see ``controllers.py``)."""

    CSS_PATH = "app.tcss"
    TITLE = PROG
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (200, "-very-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_run", "Quit"),
        Binding("p", "pause", "Pause/resume"),
        Binding("c", "clear_caches", "Clear caches"),
        Binding("a", "add_input", "Add input"),
        Binding("p,c,a", "refuse_steering", show=False),  # when the keys above are off
        Binding("l", "focus_log", "Log"),
        Binding("s", "summary", "Summary"),
        Binding("r", "report_path", "Report"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('results')", "Results", show=False),
        Binding("3", "show_tab('log')", "Log", show=False),
        Binding("ctrl+c", "interrupt", "Stop", show=False, priority=True),
        Binding("ctrl+q", "interrupt", "Stop", show=False, priority=True),
    ]

    def __init__(
        self,
        controller: RunController,
        *,
        demo: bool = False,
        exit_on_done: bool = False,
        clock: Callable[[], float] = time.time,
        refresh_hz: float = 4.0,
        toasts: bool = True,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.view = RunView(log_size=LOG_SIZE)
        self.view.demo = demo  # known before the first event, so the banner shows from the start
        self.view.resume_command = controller.resume_command
        self.mode = Mode(read_only=controller.read_only, resume_command=controller.resume_command)
        self.state = DashboardState(self.view, self.mode, clock)
        self.outcome = RunOutcome(self.view, controller.read_only)
        self.steering = Steering(controller, self.view, self.mode, self.outcome)
        self.exit_on_done, self.refresh_hz, self.toasts = exit_on_done, refresh_hz, toasts

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.state, id="header")
        yield DemoBanner(self.state, id="demo-banner")
        yield OverallProgress(self.state, id="progress")
        yield from dashboard_tabs(self.state)
        yield Footer()

    def on_mount(self) -> None:
        self.mode.waiting_for = self.controller.waiting_for
        self.controller.start(self.post_message)
        self.set_interval(1 / self.refresh_hz, self.refresh_dashboard)
        self.refresh_dashboard()
        self._run_controller()

    def on_unmount(self) -> None:
        self.controller.close()

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_controller(self) -> None:
        self.controller.run_in_thread(self.post_message)

    def refresh_dashboard(self) -> None:
        """Repaint every widget from the view (on a timer, and after notable changes)."""
        with contextlib.suppress(NoMatches):  # shutting down: the widgets are gone
            for widget in self.query("*"):
                if isinstance(widget, FOLLOWERS):
                    widget.update_from_view()

    def tell(self, notice: Notice | None) -> None:
        if notice is not None:
            self.notify(**dataclasses.asdict(notice))

    def on_event_message(self, message: EventMessage) -> None:
        self.apply_events([message.event], live=True)

    def on_event_batch(self, message: EventBatch) -> None:
        self.apply_events(message.events, live=not message.backlog)

    def on_owner_changed(self, message: OwnerChanged) -> None:
        self.mode.owner = message.owner

    def on_earlier_results(self, message: EarlierResults) -> None:
        self.view.restore(message.shards)

    def on_process_gone(self, message: ProcessGone) -> None:
        """Attach: the run's process died; without its run_done, the run is dead."""
        if self.view.started is None or not self.view.process_gone():  # died after its last event
            return
        self.refresh_bindings()
        self.refresh_dashboard()
        if self.exit_on_done:
            self.finish(EXIT_ERROR)
        elif self.toasts:
            self.tell(notices.dead(self.mode.resume_command))

    def apply_events(self, events: list[Event], live: bool = True) -> None:
        """Fold events into the view (app thread only); the widgets catch up on the next tick."""
        was_finished = self.view.status.finished
        for event in events:
            self.view.apply(event)
            if live and isinstance(event, RunPaused | RunResumed):
                self.steering.want_paused = self.view.paused
                self.refresh_bindings()
            if live and self.toasts:
                self.tell(notices.event_notice(event, self.view))
        self.mode.waiting_for = None if events else self.mode.waiting_for
        if self.view.status.finished != was_finished:
            self.refresh_bindings()
        if not self.controller.drives_run and self.view.status.finished:
            self.on_run_finished(RunFinished(self.view.exit_code or EXIT_OK))

    def on_run_finished(self, message: RunFinished) -> None:
        """The run is over: its thread returned, or an attached run's run_done was read."""
        code, error = message.exit_code, message.error
        if not self.outcome.settle(code, error):
            return
        self.mode.over = True
        self.refresh_bindings()
        if error and self.view.started is None:
            self.finish(code)  # never started (bad input, locked run dir): one line after exit
        elif self.mode.stopping or self.exit_on_done:
            self.finish(self.outcome.exit_code())
        else:
            self.refresh_dashboard()
            self.action_summary()

    def finish(self, code: int) -> None:
        """Leave the app; ``code`` becomes both its result and its return code."""
        self.exit(code, return_code=code)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Which keys the footer offers (and which act): only those that work now."""
        return self.steering.offers(action, dialog_open=isinstance(self.screen, ModalScreen))

    def action_refuse_steering(self) -> None:
        self.tell(self.steering.refusal())

    def action_quit_run(self) -> None:
        if self.outcome.over or self.controller.read_only or self.mode.stopping:
            self.action_interrupt()
        else:
            self.push_screen(ConfirmQuitScreen(), self._quit_answered)

    def _quit_answered(self, stop: bool | None) -> None:
        if stop and not self.outcome.over:
            self._stop(abandon=False)

    def action_interrupt(self) -> None:
        """ctrl+c: stop without asking (a second one abandons); never leaves workers behind."""
        if isinstance(self.screen, ConfirmQuitScreen):
            self.screen.dismiss(False)
        if self.outcome.over or self.controller.read_only:
            self.finish(self.outcome.exit_code())
        else:
            self._stop(abandon=self.mode.stopping)

    def _stop(self, abandon: bool) -> None:
        self.tell(self.steering.stop(abandon))
        self.refresh_bindings()
        self.refresh_dashboard()

    def action_pause(self) -> None:
        self.tell(self.steering.toggle_pause())

    def action_clear_caches(self) -> None:
        self.tell(self.steering.clear_caches())

    def action_add_input(self) -> None:
        self.push_screen(AddInputScreen(), lambda path: self.tell(self.steering.add_input(path)))

    def action_focus_log(self) -> None:
        self.query_one(TabbedContent).active = "log"
        self.query_one("#log-lines", EventLines).focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_report_path(self) -> None:
        self.tell(report_notice(self.view, self.controller.run_dir))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_text(read_only=self.controller.read_only)))

    def action_summary(self) -> None:
        if isinstance(self.screen, CompletionScreen):
            return
        title = self.outcome.summary_title(run_status(self.view, self.mode)[0])
        summary = completion_text(self.view, self.outcome.error)
        self.push_screen(CompletionScreen(summary, title), self._completion_closed)

    def _completion_closed(self, choice: str | None) -> None:
        if choice == "quit":
            self.finish(self.outcome.exit_code())
