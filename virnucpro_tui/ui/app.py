"""The dashboard: one Textual app for a live run, an attached one (read-only) or a scripted one.

What it is connected to is a ``RunController`` (``controllers.py``). A live run's orchestrator
runs in a Textual thread worker; events reach the app as messages and fold into one RunView; a
4 Hz timer repaints the widgets from it. Widgets get the view through the ``DashboardState``
they are built with, and are only touched on the app thread. Starting it from the command line
(signals, the resource tracker, the outcome printed afterwards) is ``launch.py``'s business.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from virnucpro_tui.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from virnucpro_tui.pool.events import (
    ErrorEvent,
    Event,
    JobAdded,
    RunPaused,
    RunResumed,
    RunStatus,
    WarningEvent,
)
from virnucpro_tui.run.describe import pause_text
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import render
from virnucpro_tui.ui.controllers import RunController
from virnucpro_tui.ui.messages import (
    EventBatch,
    EventMessage,
    OwnerChanged,
    ProcessGone,
    RunFinished,
)
from virnucpro_tui.ui.render import DashboardState, Mode
from virnucpro_tui.ui.screens import (
    AddInputScreen,
    CompletionScreen,
    ConfirmQuitScreen,
    HelpScreen,
    help_text,
)
from virnucpro_tui.ui.widgets import (
    DemoBanner,
    EventLines,
    EventLog,
    HeaderBar,
    JobTable,
    OverallProgress,
    RecentEvents,
    ResultsSummary,
    TopTable,
    ViewWidget,
    WorkerPanel,
)

PROG = "virnucpro-tui"
LOG_SIZE = 10_000  # events kept for the log (hours of a busy 8-GPU run without the telemetry)
READ_ONLY_NOTICE = "Read-only: this run is driven by another process, so p, c and a are off here."
STEERING = ("pause", "clear_caches", "add_input")  # the keys that act on a live run
DIALOG_BLOCKED = (*STEERING, "focus_log", "help", "show_tab", "summary", "quit_run")


class VirnucproApp(App[int]):
    """One dashboard for a live, attached or scripted run (see ``controllers.py``)."""

    CSS_PATH = "app.tcss"
    TITLE = PROG
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (120, "-wide"),
        (200, "-very-wide"),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_run", "Quit"),
        Binding("p", "pause", "Pause/resume"),
        Binding("c", "clear_caches", "Clear caches"),
        Binding("a", "add_input", "Add input"),
        Binding("p,c,a", "refuse_steering", show=False),  # when the keys above are off
        Binding("l", "focus_log", "Log"),
        Binding("s", "summary", "Summary"),
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
        self.mode = Mode(read_only=controller.read_only)
        self.mode.resume_command = controller.resume_command
        self.view.resume_command = controller.resume_command
        self.state = DashboardState(self.view, self.mode, clock)
        self.exit_on_done = exit_on_done
        self.clock = clock
        self.refresh_hz = refresh_hz
        self.toasts = toasts
        self.result_code: int | None = None
        self.result_error: str | None = None
        self._want_paused = False

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        state = self.state
        yield HeaderBar(state, id="header")
        yield DemoBanner(id="demo-banner")
        yield OverallProgress(state, id="progress")
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"), Horizontal(id="overview-row"):
                with Vertical(id="main-col"):
                    yield Static("Job queue", classes="section-title first")
                    with VerticalScroll(id="jobs-scroll"):
                        yield JobTable(state, id="jobs")
                    with VerticalScroll(id="workers-scroll"):
                        yield Grid(id="workers")
                    yield Static("Recent events", classes="section-title")
                    yield RecentEvents(state, id="recent")
                with VerticalScroll(id="side-col"):
                    yield ResultsSummary(state, histogram_height=6, id="side-results")
                    yield Static("", id="side-top-title", classes="section-title")
                    yield TopTable(state, compact=True, id="side-top")
            with TabPane("Results", id="results"), VerticalScroll(id="results-col"):
                yield ResultsSummary(state, histogram_height=10, id="results-summary")
                yield Static("", id="top-title", classes="section-title")
                yield TopTable(state, id="top")
            with TabPane("Log", id="log"):
                yield EventLog(state, id="event-log")
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

    # -- events -------------------------------------------------------------------------------
    def on_event_message(self, message: EventMessage) -> None:
        self.apply_events([message.event], live=True)

    def on_event_batch(self, message: EventBatch) -> None:
        self.apply_events(message.events, live=not message.backlog)

    def on_owner_changed(self, message: OwnerChanged) -> None:
        self.mode.owner = message.owner

    def on_process_gone(self, message: ProcessGone) -> None:
        """Attach: the run's process died; without its run_done, the run is dead."""
        if self.view.dead or self.view.status.finished or self.view.started is None:
            return
        self.view.process_gone(message.at)
        self.refresh_bindings()
        self.refresh_dashboard()
        if self.exit_on_done:
            self.finish(EXIT_ERROR)
        elif self.toasts:
            self.notify(
                f"The run's process ended without finishing. Resume it with: "
                f"{self.mode.resume_command or 'the same command'}",
                title="run dead",
                severity="error",
                timeout=30,
            )

    def apply_events(self, events: list[Event], live: bool = True) -> None:
        """Fold events into the view (app thread only); the widgets catch up on the next tick."""
        logged = []
        was_finished = self.view.status.finished
        for event in events:
            self.view.apply(event)
            if self.view.log and self.view.log[-1] is event:
                logged.append(event)
            if live:
                self._react(event)
        if events:
            self.mode.waiting_for = None
        if logged:
            with contextlib.suppress(NoMatches):
                self.query_one(EventLog).add(logged)
        if self.view.status.finished != was_finished:
            self.refresh_bindings()
        if not self.controller.drives_run and self.view.status.finished:
            self._on_run_over(
                self.view.exit_code if self.view.exit_code is not None else EXIT_OK, None
            )

    def _react(self, event: Event) -> None:
        if isinstance(event, RunPaused | RunResumed):
            self._want_paused = self.view.paused
            self.refresh_bindings()
        if not self.toasts:
            return
        if isinstance(event, RunPaused):
            self.notify(f"Paused: {pause_text(self.view)}. p resumes.", title="paused")
        elif isinstance(event, RunResumed):
            self.notify("Resumed: shards start again.", title="resumed")
        elif isinstance(event, WarningEvent):
            self.notify(event.message, title="warning", severity="warning", timeout=8)
        elif isinstance(event, ErrorEvent):
            self.notify(event.message, title="error", severity="error", timeout=10)
        elif isinstance(event, JobAdded):
            self.notify(f"{event.input} added as job {event.job}", title="input added")

    def on_run_finished(self, message: RunFinished) -> None:
        self._on_run_over(message.exit_code, message.error)

    @property
    def run_over(self) -> bool:
        return self.result_code is not None

    def _on_run_over(self, code: int, error: str | None) -> None:
        if self.result_code is not None:
            return
        self.result_code, self.result_error = code, error
        self.mode.over = True
        if not self.view.status.finished:  # the run ended without its run_done event
            self.view.status = {
                EXIT_OK: RunStatus.COMPLETE,
                EXIT_INTERRUPTED: RunStatus.INTERRUPTED,
            }.get(code, RunStatus.FAILED)
        self.refresh_bindings()
        if error and self.view.started is None:
            self.finish(code)  # never started (bad input, locked run dir): one line after exit
        elif self.mode.stopping or self.exit_on_done:
            self.finish(self._exit_code())
        else:
            self.refresh_dashboard()
            self.action_summary()

    def finish(self, code: int) -> None:
        """Leave the app; ``code`` becomes both its result and its return code."""
        self.exit(code, return_code=code)

    def _exit_code(self) -> int:
        if self.controller.read_only:
            if self.view.dead:
                return EXIT_ERROR
            return EXIT_OK
        if self.result_code is not None:
            return self.result_code
        return self.view.exit_code if self.view.exit_code is not None else EXIT_INTERRUPTED

    # -- repaint ------------------------------------------------------------------------------
    def refresh_dashboard(self) -> None:
        """Repaint every widget from the view (on a timer, and after notable changes)."""
        with contextlib.suppress(NoMatches):  # shutting down: the widgets are gone
            self._refresh_widgets()

    def _refresh_widgets(self) -> None:
        self._sync_worker_panels()
        for widget in self.query(ViewWidget):
            widget.update_from_view()
        self.query_one("#top-title", Static).update(self.query_one("#top", TopTable).title)
        self.query_one("#side-top-title", Static).update(
            self.query_one("#side-top", TopTable).title
        )
        self.query_one(EventLog).sync_workers()
        self.query_one(DemoBanner).display = self.view.demo

    def _sync_worker_panels(self) -> None:
        grid = self.query_one("#workers", Grid)
        panels = {panel.worker: panel for panel in grid.query(WorkerPanel)}
        for n, panel in panels.items():
            if n not in self.view.workers:  # a resumed run with fewer workers
                panel.remove()
        new = [
            WorkerPanel(self.state, n, id=f"worker-{n}")
            for n in sorted(self.view.workers)
            if n not in panels
        ]
        if new:
            grid.mount_all(new)

    # -- keys ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Which keys the footer offers (and which act): only those that work now."""
        if action in DIALOG_BLOCKED and isinstance(self.screen, ModalScreen):
            return False  # a dialog is open: its own keys apply
        if action in STEERING:
            return self._can_steer
        if action == "refuse_steering":
            return not self._can_steer
        if action == "summary":
            return self.run_over
        return True

    @property
    def _can_steer(self) -> bool:
        return not (
            self.controller.read_only
            or self.run_over
            or self.mode.stopping
            or self.view.status.finished
            or self.view.dead
        )

    def action_refuse_steering(self) -> None:
        if self.controller.read_only:
            self.notify(READ_ONLY_NOTICE, title="attached", severity="warning")
        else:
            self.notify("The run is no longer going.", severity="warning")

    def action_quit_run(self) -> None:
        if self.run_over or self.controller.read_only:
            self.finish(self._exit_code())
        elif self.mode.stopping:
            self._abandon()
        else:
            self.push_screen(ConfirmQuitScreen(), self._quit_answered)

    def _quit_answered(self, stop: bool | None) -> None:
        if stop and not self.run_over:
            self._request_stop()

    def action_interrupt(self) -> None:
        """ctrl+c: stop without asking (a second one abandons); never leaves workers behind."""
        if isinstance(self.screen, ConfirmQuitScreen):
            self.screen.dismiss(False)
        if self.run_over or self.controller.read_only:
            self.finish(self._exit_code())
        elif self.mode.stopping:
            self._abandon()
        else:
            self._request_stop()

    def stop_for_signal(self) -> None:
        """A signal asked the process to end: stop (or abandon) and leave as soon as it has."""
        self.exit_on_done = True
        self.action_interrupt()

    def _request_stop(self) -> None:
        self.mode.stopping = True
        self.controller.stop(abandon=False)
        self.refresh_bindings()
        self.notify(
            "Stopping: the shards in flight finish, then the run exits and stays resumable. "
            "q or ctrl+c again abandons them.",
            title="stopping",
            timeout=10,
        )
        self.refresh_dashboard()

    def _abandon(self) -> None:
        if self.mode.abandoning:
            return
        self.mode.abandoning = True
        self.controller.stop(abandon=True)
        self.notify(
            "Abandoning the shards in flight and stopping every worker.", severity="warning"
        )
        self.refresh_dashboard()

    def action_pause(self) -> None:
        self._want_paused = not self._want_paused
        self.controller.set_paused(self._want_paused)
        self.notify(
            "Pausing: shards already running finish, none starts (p resumes)."
            if self._want_paused
            else "Resuming dispatch.",
            title="pause",
        )

    def action_clear_caches(self) -> None:
        self.controller.clear_caches()
        self.notify(
            "Emptying every worker's cache now; the panels show the bytes freed.", title="cache"
        )

    def action_add_input(self) -> None:
        self.push_screen(AddInputScreen(), self._input_chosen)

    def _input_chosen(self, path: Path | None) -> None:
        if path is None or self.run_over:
            return
        self.controller.add_input(path)
        self.notify(
            f"{path}: checked by the run, then queued (see the job queue).", title="adding input"
        )

    def action_focus_log(self) -> None:
        self.query_one(TabbedContent).active = "log"
        self.query_one("#log-lines", EventLines).focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_text(read_only=self.controller.read_only)))

    def action_summary(self) -> None:
        if isinstance(self.screen, CompletionScreen):
            return
        title = f"Run {render.run_status(self.view, self.mode)[0].lower()}" + (
            f" — exit {self._exit_code()}" if not self.controller.read_only else ""
        )
        summary = render.completion_text(self.view, self.result_error)
        self.push_screen(CompletionScreen(summary, title), self._completion_closed)

    def _completion_closed(self, choice: str | None) -> None:
        if choice == "quit":
            self.finish(self._exit_code())
