"""The live dashboard (``virnucpro-tui run`` in a terminal) and ``attach``'s read-only twin.

The orchestrator runs in a Textual thread worker. Its events reach the app as messages and fold
into one RunView; a 4 Hz timer repaints the widgets from it. Widgets are only touched here, on
the app thread. The main process never imports torch for the UI and never touches CUDA.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from virnucpro_tui.errors import EXIT_INTERRUPTED, EXIT_OK
from virnucpro_tui.pool.events import (
    ErrorEvent,
    Event,
    JobAdded,
    RunPaused,
    RunResumed,
    RunStatus,
    WarningEvent,
)
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.run.describe import summary_lines
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import render
from virnucpro_tui.ui.controllers import AttachedRun, LiveRun
from virnucpro_tui.ui.messages import EventBatch, EventMessage, RunFinished
from virnucpro_tui.ui.screens import AddInputScreen, CompletionScreen, ConfirmQuitScreen, HelpScreen
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
EXIT_ON_DONE_ENV = "VIRNUCPRO_TUI_EXIT_ON_DONE"
LOG_SIZE = 10_000  # events kept for the log (hours of a busy 8-GPU run without the telemetry)
READ_ONLY_NOTICE = "Read-only: this run is driven by another process, so p, c and a are off here."
STEERING_ACTIONS = (
    "pause",
    "clear_caches",
    "add_input",
    "focus_log",
    "help",
    "show_tab",
    "summary",
    "quit_run",
)


class VirnucproApp(App[int]):
    """One dashboard for a live, attached or scripted run (see ``controllers.py``)."""

    CSS_PATH = "app.tcss"
    TITLE = PROG
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"),
        (120, "-wide"),
        (200, "-very-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (40, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_run", "Quit"),
        Binding("p", "pause", "Pause/resume"),
        Binding("c", "clear_caches", "Clear caches"),
        Binding("a", "add_input", "Add input"),
        Binding("l", "focus_log", "Log"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('results')", "Results", show=False),
        Binding("3", "show_tab('log')", "Log", show=False),
        Binding("s", "summary", "Summary", show=False),
        Binding("ctrl+c", "interrupt", "Stop", show=False, priority=True),
        Binding("ctrl+q", "interrupt", "Stop", show=False, priority=True),
    ]

    def __init__(
        self,
        controller: Any,
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
        self.mode = render.Mode(read_only=controller.read_only)
        self.exit_on_done = exit_on_done
        self.clock = clock
        self.refresh_hz = refresh_hz
        self.toasts = toasts
        self.result_code: int | None = None
        self.result_error: str | None = None
        self._want_paused = False

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield DemoBanner(id="demo-banner")
        yield OverallProgress(id="progress")
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"), Horizontal(id="overview-row"):
                with VerticalScroll(id="main-col"):
                    yield Grid(id="workers")
                    yield Static("Job queue", classes="section-title")
                    yield JobTable(id="jobs")
                with VerticalScroll(id="side-col"):
                    yield ResultsSummary(histogram_height=6, id="side-results")
                    yield Static("Recent events", classes="section-title")
                    yield RecentEvents(id="recent")
            with TabPane("Results", id="results"), VerticalScroll(id="results-col"):
                yield ResultsSummary(histogram_height=10, id="results-summary")
                yield Static("", id="top-title", classes="section-title")
                yield TopTable(id="top")
            with TabPane("Log", id="log"):
                yield EventLog(id="event-log")
        yield Footer()

    def on_mount(self) -> None:
        self.controller.prepare(self.post_message)
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

    def apply_events(self, events: list[Event], live: bool = True) -> None:
        """Fold events into the view (app thread only); the widgets catch up on the next tick."""
        logged = []
        for event in events:
            self.view.apply(event)
            if self.view.log and self.view.log[-1] is event:
                logged.append(event)
            if live:
                self._react(event)
        if logged:
            with contextlib.suppress(NoMatches):
                self.query_one(EventLog).add(logged)
        if not self._drives_run and self.view.status.finished:
            self._on_run_over(
                self.view.exit_code if self.view.exit_code is not None else EXIT_OK, None
            )

    def _react(self, event: Event) -> None:
        if isinstance(event, RunPaused | RunResumed):
            self._want_paused = self.view.paused
        if not self.toasts:
            return
        if isinstance(event, WarningEvent):
            self.notify(event.message, title="warning", severity="warning", timeout=8)
        elif isinstance(event, ErrorEvent):
            self.notify(event.message, title="error", severity="error", timeout=10)
        elif isinstance(event, JobAdded):
            self.notify(f"{event.input} added as job {event.job}", title="input added")

    def on_run_finished(self, message: RunFinished) -> None:
        self._on_run_over(message.exit_code, message.error)

    @property
    def _drives_run(self) -> bool:
        return isinstance(self.controller, LiveRun)

    @property
    def run_is_live(self) -> bool:
        return self.view.status == "running" and self.result_code is None

    def _on_run_over(self, code: int, error: str | None) -> None:
        if self.result_code is not None:
            return
        self.result_code, self.result_error = code, error
        if not self.view.status.finished:  # the run ended without its run_done event
            self.view.status = {
                EXIT_OK: RunStatus.COMPLETE,
                EXIT_INTERRUPTED: RunStatus.INTERRUPTED,
            }.get(code, RunStatus.FAILED)
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
            return EXIT_OK
        if self.result_code is not None:
            return self.result_code
        return self.view.exit_code if self.view.exit_code is not None else EXIT_INTERRUPTED

    @property
    def run_over(self) -> bool:
        return self.result_code is not None

    # -- repaint ------------------------------------------------------------------------------
    def refresh_dashboard(self) -> None:
        """Repaint every widget from the view (on a timer, and after notable changes)."""
        with contextlib.suppress(NoMatches):  # shutting down: the widgets are gone
            self._refresh_widgets()

    def _refresh_widgets(self) -> None:
        self.mode.waiting_for = self.controller.waiting_for if self.view.events_seen == 0 else None
        self.mode.owner = self.controller.owner if self.controller.read_only else None
        self._sync_worker_panels()
        for widget in self.query(ViewWidget):
            widget.update_from_view()
        self.query_one(JobTable).sync(self.view)
        self.query_one("#top-title", Static).update(self.query_one(TopTable).sync(self.view))
        self.query_one(EventLog).sync_workers(self.view)
        self.query_one(DemoBanner).display = self.view.demo

    def _sync_worker_panels(self) -> None:
        grid = self.query_one("#workers", Grid)
        shown = {panel.worker for panel in grid.query(WorkerPanel)}
        new = [
            WorkerPanel(n, id=f"worker-{n}") for n in sorted(self.view.workers) if n not in shown
        ]
        if new:
            grid.mount_all(new)

    # -- keys ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in STEERING_ACTIONS and isinstance(self.screen, ModalScreen):
            return False  # a dialog is open: its own keys apply
        return action != "summary" or self.run_over

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

    def _read_only_refusal(self) -> bool:
        if self.controller.read_only:
            self.notify(READ_ONLY_NOTICE, title="attached", severity="warning")
            return True
        if self.run_over or self.mode.stopping:
            self.notify("The run is no longer going.", severity="warning")
            return True
        return False

    def action_pause(self) -> None:
        if self._read_only_refusal():
            return
        self._want_paused = not self._want_paused
        self.controller.set_paused(self._want_paused)
        self.notify(
            "Pausing dispatch: shards in flight finish, no new ones start (p resumes)."
            if self._want_paused
            else "Resuming dispatch.",
            title="pause",
        )

    def action_clear_caches(self) -> None:
        if self._read_only_refusal():
            return
        self.controller.clear_caches()
        self.notify(
            "Emptying every worker's cache now; the panels show the bytes freed.", title="cache"
        )

    def action_add_input(self) -> None:
        if self._read_only_refusal():
            return
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
        self.push_screen(HelpScreen())

    def action_summary(self) -> None:
        if isinstance(self.screen, CompletionScreen):
            return
        title = f"Run {self.view.status}" + (
            f" — exit {self._exit_code()}" if not self.controller.read_only else ""
        )
        summary = render.completion_text(self.view, self.result_error)
        self.push_screen(CompletionScreen(summary, title), self._completion_closed)

    def _completion_closed(self, choice: str | None) -> None:
        if choice == "quit":
            self.finish(self._exit_code())


# -- entry points -----------------------------------------------------------------------------------
def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def _stop_on_signals(app: VirnucproApp) -> Iterator[None]:
    """SIGTERM/SIGHUP/SIGINT (the ssh session died, a scheduler's kill): act like ctrl+c, and exit
    once the run has stopped. The handler only schedules that on the app's loop."""

    def on_signal(_signum: int, _frame: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the app is not running (yet, or any more)
            app.controller.stop(abandon=app.mode.stopping)
            app.mode.stopping = True
            return
        loop.call_soon_threadsafe(app.stop_for_signal)

    wanted = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
    old = {s: signal.signal(s, on_signal) for s in wanted}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def live_app(cfg: Any, sinks: list[Any], backend: Any, **options: Any) -> VirnucproApp:
    """The dashboard wired to a new Orchestrator for ``cfg`` (its events also go to ``sinks``)."""
    from virnucpro_tui.run.orchestrator import Orchestrator

    start_resource_tracker()
    controller = LiveRun(lambda sink: Orchestrator(cfg, [sink, *sinks], backend=backend))
    return VirnucproApp(controller, demo=cfg.demo, **options)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker while sys.stderr is still the real one.

    The pool spawns its workers from the app's thread, when Textual has replaced sys.stderr with
    a capture object whose fileno() is -1; the tracker, started lazily, would then fail to spawn.
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def run_dashboard(cfg: Any, sinks: list[Any], backend: Any) -> int:
    """``virnucpro-tui run`` in a terminal. Returns the run's exit code (0, 1, 2 or 130)."""
    app = live_app(cfg, sinks, backend, exit_on_done=_env_flag(EXIT_ON_DONE_ENV))
    controller = app.controller
    with _stop_on_signals(app):
        app.run()
    controller.close()
    controller.finished.wait(timeout=60)
    if controller.traceback and _env_flag("VIRNUCPRO_TUI_DEBUG"):
        print(controller.traceback, file=sys.stderr)
    _print_outcome(app.view, controller.error)
    if controller.exit_code is not None:
        return controller.exit_code
    return app.return_code or EXIT_INTERRUPTED


def _print_outcome(view: RunView, error: str | None) -> None:
    """After the screen is restored: the summary (outputs, resumable) and any error, as plain lines."""
    if view.started is not None:
        for line in summary_lines(view):
            print(line, file=sys.stderr)
    if error:
        print(f"{PROG}: error: {error}", file=sys.stderr)


def attach_dashboard(run_dir: Path) -> int:
    """``virnucpro-tui attach DIR`` in a terminal: the dashboard, read-only."""
    controller = AttachedRun(run_dir)
    app = VirnucproApp(
        controller, demo=_manifest_demo(run_dir), exit_on_done=_env_flag(EXIT_ON_DONE_ENV)
    )
    with _stop_on_signals(app):
        app.run()
    controller.close()
    return EXIT_OK


def _manifest_demo(run_dir: Path) -> bool:
    try:
        return bool(json.loads(RunLayout(Path(run_dir)).manifest.read_text()).get("demo"))
    except (OSError, ValueError, AttributeError):
        return False
