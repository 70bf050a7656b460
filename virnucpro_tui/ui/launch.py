"""Starting the dashboard from the command line, and what happens around it in the process:
signals (SIGTERM, SIGHUP, SIGINT act like ctrl+c), multiprocessing's resource tracker, and the
outcome printed once the screen is restored. The app itself (``app.py``) knows none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from virnucpro_tui.errors import EXIT_INTERRUPTED
from virnucpro_tui.pool.events import EventSink
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.transport import Backend
from virnucpro_tui.run.attach import resume_command_of
from virnucpro_tui.run.describe import summary_lines
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui.app import PROG, VirnucproApp
from virnucpro_tui.ui.controllers import AttachedRun, LiveRun

if TYPE_CHECKING:
    from virnucpro_tui.run.orchestrator import RunConfig

EXIT_ON_DONE_ENV = "VIRNUCPRO_TUI_EXIT_ON_DONE"


def stop_for_signal(app: VirnucproApp) -> None:
    """A signal asked the process to end: stop (or abandon) and leave as soon as it has."""
    app.exit_on_done = True
    app.action_interrupt()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def stop_on_signals(app: VirnucproApp) -> Iterator[None]:
    """SIGTERM/SIGHUP/SIGINT (the ssh session died, a scheduler's kill): act like ctrl+c, and exit
    once the run has stopped. The handler only schedules that on the app's loop."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            terminal_gone()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the app is not running (yet, or any more)
            app.controller.stop(abandon=app.mode.stopping)
            app.mode.stopping = True
            return
        loop.call_soon_threadsafe(stop_for_signal, app)

    wanted = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
    old = {s: signal.signal(s, on_signal) for s in wanted}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def terminal_gone() -> None:
    """The terminal hung up (the ssh session or the tmux pane died): what is still written goes
    to /dev/null. Writing to the dead terminal fails (EIO), which ends Textual's output thread;
    the app's shutdown would then wait forever for that thread to take its last write."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def live_app(
    cfg: RunConfig,
    sinks: list[EventSink],
    backend: Backend[Any] | None,
    exit_on_done: bool = False,
    toasts: bool = True,
) -> tuple[VirnucproApp, LiveRun]:
    """The dashboard wired to a new Orchestrator for ``cfg`` (its events also go to ``sinks``),
    and the controller that runs it."""
    from virnucpro_tui.run.orchestrator import Orchestrator

    start_resource_tracker()
    controller = LiveRun(lambda sink: Orchestrator(cfg, [sink, *sinks], backend=backend))
    app = VirnucproApp(controller, demo=cfg.demo, exit_on_done=exit_on_done, toasts=toasts)
    return app, controller


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker while sys.stderr is still the real one.

    The pool spawns its workers from the app's thread, when Textual has replaced sys.stderr with
    a capture object whose fileno() is -1; the tracker, started lazily, would then fail to spawn.
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def run_dashboard(cfg: RunConfig, sinks: list[EventSink], backend: Backend[Any] | None) -> int:
    """``virnucpro-tui run`` in a terminal. Returns the run's exit code (0, 1, 2 or 130)."""
    app, controller = live_app(cfg, sinks, backend, exit_on_done=env_flag(EXIT_ON_DONE_ENV))
    with stop_on_signals(app):
        app.run()
    controller.close()
    controller.finished.wait(timeout=60)
    if controller.traceback and env_flag("VIRNUCPRO_TUI_DEBUG"):
        print(controller.traceback, file=sys.stderr)
    print_outcome(app.view, controller.error)
    if controller.exit_code is not None:
        return controller.exit_code
    return app.return_code or EXIT_INTERRUPTED


def print_outcome(view: RunView, error: str | None) -> None:
    """After the screen is restored: the summary (outputs, resumable) and any error, as plain lines."""
    if view.started is not None:
        if view.resume_command is None:  # a run of this process: the command it ran
            view.resume_command = resume_command_of(view.out)
        for line in summary_lines(view):
            print(line, file=sys.stderr)
    if error:
        print(f"{PROG}: error: {error}", file=sys.stderr)


def attach_dashboard(run_dir: Path) -> int:
    """``virnucpro-tui attach DIR`` in a terminal: the dashboard, read-only. Exit 1 when the
    run's process died unfinished (as ``attach --no-ui``), else 0."""
    controller = AttachedRun(run_dir)
    app = VirnucproApp(
        controller, demo=manifest_demo(run_dir), exit_on_done=env_flag(EXIT_ON_DONE_ENV)
    )
    with stop_on_signals(app):
        app.run()
    controller.close()
    if app.view.dead:  # the command that resumes it, where it can be copied
        print_outcome(app.view, None)
    return app.return_code or 0


def manifest_demo(run_dir: Path) -> bool:
    try:
        return bool(json.loads(RunLayout(Path(run_dir)).manifest.read_text()).get("demo"))
    except (OSError, ValueError, AttributeError):
        return False
