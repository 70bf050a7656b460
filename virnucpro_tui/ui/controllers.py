"""What the dashboard is connected to: a live run it steers, an attached run it only watches,
or a scripted event list (tests, screenshots).

``run_in_thread`` runs in the app's thread worker and talks back only through ``post``
(``App.post_message``, which is thread-safe). The steering methods are called on the app thread.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.message import Message

from virnucpro_tui.errors import EXIT_ERROR, VirnucproError
from virnucpro_tui.pool.events import Event, EventSink
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.run.attach import EventTail, run_owner
from virnucpro_tui.ui.messages import EventBatch, EventMessage, RunFinished

Post = Callable[[Message], Any]
BACKLOG_BATCH = 5000
OWNER_CHECK_S = 2.0


class LiveRun:
    """Drives an Orchestrator in the app's thread worker."""

    read_only = False
    owner: str | None = None
    waiting_for: str | None = None

    def __init__(self, make_orchestrator: Callable[[EventSink], Any]) -> None:
        self._make = make_orchestrator
        self.orchestrator: Any = None
        self.finished = threading.Event()
        self.exit_code: int | None = None
        self.error: str | None = None
        self.traceback: str | None = None

    def prepare(self, post: Post) -> None:
        self.orchestrator = self._make(lambda event: post(EventMessage(event)))

    def run_in_thread(self, post: Post) -> None:
        code, error = EXIT_ERROR, None
        try:
            code = self.orchestrator.execute()
        except VirnucproError as exc:
            code, error = exc.exit_code, str(exc)
        except Exception as exc:  # noqa: BLE001 - shown as one line after the app exits
            error = f"internal error: {type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
        finally:
            self.exit_code, self.error = code, error
            self.finished.set()
        post(RunFinished(code, error))

    def stop(self, abandon: bool) -> None:
        self.orchestrator.request_stop(abandon=abandon)

    def set_paused(self, paused: bool) -> None:
        self.orchestrator.set_paused(paused)

    def clear_caches(self) -> None:
        self.orchestrator.clear_caches()

    def add_input(self, path: Path) -> None:
        self.orchestrator.add_input(path)

    def close(self) -> None:
        """The app is going away: never leave the run (and its workers) behind."""
        if self.orchestrator is not None and not self.finished.is_set():
            self.orchestrator.request_stop(abandon=True)


class AttachedRun:
    """Follows a run that another process executes, by tailing its events.jsonl (read-only)."""

    read_only = True

    def __init__(self, run_dir: Path, poll_s: float = 0.25) -> None:
        self.run_dir = Path(run_dir)
        self.poll_s = poll_s
        self.tail = EventTail(RunLayout(self.run_dir).events)
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._owner: str | None = None
        self._owner_checked = -OWNER_CHECK_S

    @property
    def owner(self) -> str | None:
        """Who runs it, from the run directory's lock ("gone" once that process has died)."""
        now = time.monotonic()
        if now - self._owner_checked > OWNER_CHECK_S:
            self._owner_checked = now
            owner = run_owner(self.run_dir)
            gone = " (gone)" if owner is not None and owner.alive() is False else ""
            self._owner = f"{owner.describe()}{gone}" if owner is not None else None
        return self._owner

    @property
    def waiting_for(self) -> str | None:
        return str(self.tail.path)

    def prepare(self, post: Post) -> None:
        pass

    def run_in_thread(self, post: Post) -> None:
        try:
            backlog = self.tail.backlog()
            for start in range(0, len(backlog), BACKLOG_BATCH):
                post(EventBatch(backlog[start : start + BACKLOG_BATCH], backlog=True))
            while not self._stop.wait(self.poll_s):
                events = self.tail.poll()
                if events:
                    post(EventBatch(events))
        finally:
            self.tail.close()
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
    """No run at all: events are fed by the caller; steering calls are recorded."""

    owner: str | None = None
    waiting_for: str | None = None

    def __init__(self, events: list[Event] | None = None, read_only: bool = False) -> None:
        self.events = list(events or [])
        self.read_only = read_only
        self.calls: list[tuple[str, Any]] = []
        self.finished = threading.Event()

    def prepare(self, post: Post) -> None:
        pass

    def run_in_thread(self, post: Post) -> None:
        if self.events:
            post(EventBatch(self.events))
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
