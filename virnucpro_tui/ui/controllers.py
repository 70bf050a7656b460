"""What the dashboard is connected to (``RunController``): a live run it steers, an attached run
it only watches, or a scripted event list (tests, screenshots).

``run_in_thread`` runs in the app's thread worker and talks back only through ``post``
(``App.post_message``, which is thread-safe). The other methods are called on the app thread.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message

from virnucpro_tui.errors import EXIT_ERROR, VirnucproError
from virnucpro_tui.pool.events import Event, EventSink, RunStarted, ShardDone
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.run.attach import EventTail, Process, RunWatch
from virnucpro_tui.ui import messages as msg

if TYPE_CHECKING:  # the orchestrator (and torch) load only for a live run
    from virnucpro_tui.run.orchestrator import Orchestrator

Post = Callable[[Message], Any]
BACKLOG_BATCH = 5000


class RunController(Protocol):
    """The dashboard's side of a run. ``read_only``: the steering keys (p, c, a) are off.
    ``drives_run``: the run ends with the app (a live run); otherwise the app only watches."""

    read_only: bool
    drives_run: bool
    waiting_for: str | None  # what the dashboard waits for before the first event
    resume_command: str | None  # the command that resumes the run, when known
    run_dir: Path | None  # where an attached run was found (None: the run's own --out)
    finished: threading.Event  # set when run_in_thread has returned

    def start(self, post: Post) -> None:
        """On the app thread, once the app is mounted (before ``run_in_thread``)."""

    def run_in_thread(self, post: Post) -> None:
        """The run, in the app's thread worker; events come back through ``post``."""

    def stop(self, abandon: bool) -> None: ...

    def set_paused(self, paused: bool) -> None: ...

    def clear_caches(self) -> None: ...

    def add_input(self, path: Path) -> None: ...

    def close(self) -> None:
        """The app is going away."""


class LiveRun:
    """Drives an Orchestrator in the app's thread worker."""

    read_only = False
    drives_run = True
    waiting_for: str | None = None
    resume_command: str | None = None

    def __init__(self, make_orchestrator: Callable[[EventSink], Orchestrator]) -> None:
        self._make = make_orchestrator
        self.run_dir: Path | None = None
        self.orchestrator: Orchestrator | None = None
        self.finished = threading.Event()
        self.exit_code: int | None = None
        self.error: str | None = None
        self.traceback: str | None = None

    def start(self, post: Post) -> None:
        self.orchestrator = self._make(lambda event: self._forward(event, post))

    @staticmethod
    def _forward(event: Event, post: Post) -> None:
        """Each event to the app; before a resumed run's start, what its earlier runs scored."""
        if isinstance(event, RunStarted) and event.resumed:
            post(msg.EarlierResults(earlier_results(event.out, before=event.ts)))
        post(msg.EventMessage(event))

    def _run(self) -> Orchestrator:
        if self.orchestrator is None:
            raise RuntimeError("the live run is not started yet")
        return self.orchestrator

    def run_in_thread(self, post: Post) -> None:
        code, error = EXIT_ERROR, None
        try:
            code = self._run().execute()
        except VirnucproError as exc:
            code, error = exc.exit_code, str(exc)
        except Exception as exc:  # noqa: BLE001 - shown as one line after the app exits
            error = f"internal error: {type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
        finally:
            self.exit_code, self.error = code, error
            self.finished.set()
        post(msg.RunFinished(code, error))

    def stop(self, abandon: bool) -> None:
        self._run().request_stop(abandon=abandon)

    def set_paused(self, paused: bool) -> None:
        self._run().set_paused(paused)

    def clear_caches(self) -> None:
        self._run().clear_caches()

    def add_input(self, path: Path) -> None:
        self._run().add_input(path)

    def close(self) -> None:
        """The app is going away: never leave the run (and its workers) behind."""
        if self.orchestrator is not None and not self.finished.is_set():
            self.orchestrator.request_stop(abandon=True)


class AttachedRun:
    """Follows a run that another process executes (read-only): its events.jsonl, and whether
    its process lives (``RunWatch``). A process gone without ``run_done`` is posted as
    ``ProcessGone`` once its last events are read."""

    read_only = True
    drives_run = False

    def __init__(self, run_dir: Path, poll_s: float = 0.25, check_every_s: float = 2.0) -> None:
        self.watch = RunWatch(Path(run_dir), check_every_s)
        self.run_dir: Path | None = self.watch.run_dir
        self.poll_s = poll_s
        self.waiting_for: str | None = str(self.watch.tail.path)
        self.resume_command = self.watch.resume_command()
        self._stop = threading.Event()
        self.finished = threading.Event()

    def start(self, post: Post) -> None:
        pass

    def run_in_thread(self, post: Post) -> None:
        owner: str | None = None
        try:
            backlog = self.watch.tail.backlog()
            for start in range(0, len(backlog), BACKLOG_BATCH):
                post(msg.EventBatch(backlog[start : start + BACKLOG_BATCH], backlog=True))
            while True:
                process = self.watch.process()
                if (text := self.watch.owner_text()) != owner:
                    owner = text
                    post(msg.OwnerChanged(text))
                events = self.watch.tail.poll()  # after the liveness check: the last events too
                if events:
                    post(msg.EventBatch(events))
                if process == Process.GONE:
                    post(msg.ProcessGone())
                if self._stop.wait(self.poll_s):
                    return
        finally:
            self.watch.close()
            self.finished.set()

    def stop(self, abandon: bool) -> None:
        pass

    def set_paused(self, paused: bool) -> None:
        pass

    def clear_caches(self) -> None:
        pass

    def add_input(self, path: Path) -> None:
        pass

    def close(self) -> None:
        self._stop.set()


class ScriptedRun:
    """No run at all: a fixed event list, delivered on the app thread when the app starts (so
    what a test or a screenshot sees does not depend on thread timing); steering calls are
    recorded."""

    drives_run = False
    waiting_for: str | None = None
    resume_command: str | None = None

    def __init__(self, events: list[Event] | None = None, read_only: bool = False) -> None:
        self.events = list(events or [])
        self.read_only = read_only
        self.run_dir: Path | None = None
        self.calls: list[tuple[str, Any]] = []
        self.finished = threading.Event()

    def start(self, post: Post) -> None:
        if self.events:
            post(msg.EventBatch(self.events))

    def run_in_thread(self, post: Post) -> None:
        self.finished.set()

    def stop(self, abandon: bool) -> None:
        self.calls.append(("stop", abandon))

    def set_paused(self, paused: bool) -> None:
        self.calls.append(("pause", paused))

    def clear_caches(self) -> None:
        self.calls.append(("clear", None))

    def add_input(self, path: Path) -> None:
        self.calls.append(("add", path))

    def close(self) -> None:
        pass


def earlier_results(out: str, before: float) -> list[ShardDone]:
    """The shards a run directory's events file says were finished before ``before``."""
    tail = EventTail(RunLayout(Path(out)).events)
    try:
        return [e for e in tail.backlog() if isinstance(e, ShardDone) and e.ts < before]
    finally:
        tail.close()
