"""``virnucpro-tui attach DIR``: watch a run that another process is executing, or has finished.

The run's ``events.jsonl`` is tailed like ``tail -F``: the file may not exist yet, its last line
may be half written, and it is rotated to ``events.jsonl.1`` past its size limit. The events fold
into the same RunView as the live dashboard and the headless reporter, so all three agree.

No Textual here (see the import-linter contract): the dashboard is loaded by name only when a
terminal UI is wanted, so a headless ``attach`` works where Textual cannot be imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import BinaryIO, TextIO

from virnucpro_tui.errors import EXIT_OK, InputError
from virnucpro_tui.headless import event_line, progress_line, summary_lines
from virnucpro_tui.pool.events import Event, RunDone, RunStatus, decode_event
from virnucpro_tui.run.rundir import EVENTS, LOCK, MANIFEST
from virnucpro_tui.run.view import RunView

PROG = "virnucpro-tui"
ROTATED_KEPT = 3


class EventTail:
    """Reads the complete events appended to a JSONL file, across rotations.

    ``backlog()`` returns what is there now (rotated files first, oldest first); each later
    ``poll()`` returns the events appended since. A torn last line waits for its end.
    """

    def __init__(self, path: str | Path, rotated_kept: int = ROTATED_KEPT) -> None:
        self.path = Path(path)
        self.rotated_kept = rotated_kept
        self._fh: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = b""

    # -- public -------------------------------------------------------------------------------
    def backlog(self) -> list[Event]:
        self._open_current()  # hold the current file first, so a rotation now loses nothing
        events: list[Event] = []
        for i in range(self.rotated_kept, 0, -1):
            rotated = self.path.with_name(f"{self.path.name}.{i}")
            if rotated.exists() and _inode(rotated) != self._inode:
                events += _parse_complete_lines(rotated.read_bytes())
        return events + self.poll()

    def poll(self) -> list[Event]:
        if self._fh is None and not self._open_current():
            return []
        events = self._read_new()
        current = _inode(self.path)
        if current is not None and current != self._inode:
            events += self._read_new()  # drain the old file (now events.jsonl.1), then switch
            self._switch_to_current()
            events += self._read_new()
        elif current is not None and self._fh is not None and _size(self.path) < self._fh.tell():
            self._switch_to_current()  # truncated in place: start over
            events += self._read_new()
        return events

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # -- internals ----------------------------------------------------------------------------
    def _open_current(self) -> bool:
        try:
            self._fh = self.path.open("rb")
        except FileNotFoundError:
            return False
        self._inode = os.fstat(self._fh.fileno()).st_ino
        self._partial = b""
        return True

    def _switch_to_current(self) -> None:
        self.close()
        self._open_current()

    def _read_new(self) -> list[Event]:
        if self._fh is None:
            return []
        data = self._fh.read()
        if not data:
            return []
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return _parse_lines(lines)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _parse_complete_lines(data: bytes) -> list[Event]:
    lines = data.split(b"\n")
    lines.pop()  # the part after the last newline is torn (or empty)
    return _parse_lines(lines)


def _parse_lines(lines: list[bytes]) -> list[Event]:
    """The valid events among ``lines``; anything else (another tool's writing, a hostile edit,
    a type this version does not know) is skipped."""
    events = []
    for line in lines:
        if line.strip() and (event := decode_event(line)) is not None:
            events.append(event)
    return events


# -- the run directory --------------------------------------------------------------------------
def check_run_dir(run_dir: Path) -> None:
    """Raise InputError (exit 2) unless ``run_dir`` looks like the --out of a run."""
    if not run_dir.exists():
        raise InputError(f"{run_dir}: no such directory (give the --out directory of a run)")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (give the --out directory of a run)")
    markers = (EVENTS, f"{EVENTS}.1", MANIFEST, LOCK)
    if not any((run_dir / name).exists() for name in markers):
        raise InputError(
            f"{run_dir}: not a virnucpro-tui run directory (no {EVENTS} or {MANIFEST})"
        )


def run_owner(run_dir: Path) -> tuple[int | None, str | None]:
    """The pid and host that last held the run directory's lock."""
    try:
        words = (run_dir / LOCK).read_text().split()
    except OSError:
        return None, None
    pid = int(words[1]) if len(words) > 1 and words[0] == "pid" and words[1].isdigit() else None
    host = words[3] if len(words) > 3 and words[2] == "on" else None
    return pid, host


def owner_alive(run_dir: Path) -> bool | None:
    """Whether the process running ``run_dir`` is alive: None when it runs on another host."""
    pid, host = run_owner(run_dir)
    if pid is None:
        return None
    if host and host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def manifest_status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / MANIFEST).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def run_is_over(view: RunView, run_dir: Path) -> bool:
    """The run finished (its run_done is the newest event) or its process is gone."""
    return view.status.finished or owner_alive(run_dir) is False


# -- headless attach ----------------------------------------------------------------------------
class AttachPrinter:
    """Plain lines for a run read from its events: the notable events, progress, the summary."""

    def __init__(self, stream: TextIO, interval_s: float = 5.0) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.view = RunView()
        self._last_progress = 0.0

    def print(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text + "\n")
            self.stream.flush()

    def feed(self, event: Event) -> None:
        self.view.apply(event)
        line = event_line(self.view, event)
        if line:
            self.print(line)
        if isinstance(event, RunDone):
            self.print(progress_line(self.view, event.ts))
            for text in summary_lines(self.view):
                self.print(text)

    def progress(self, now: float | None = None, force: bool = False) -> None:
        now = now or time.time()
        if self.view.status != RunStatus.RUNNING:
            return
        if force or now - self._last_progress >= self.interval_s:
            self._last_progress = now
            self.print(progress_line(self.view, now))


def attach_headless(
    run_dir: Path,
    follow: bool,
    stream: TextIO | None = None,
    poll_s: float = 0.5,
    interval_s: float = 5.0,
) -> int:
    """Print the events so far; with ``follow``, keep printing until the run ends."""
    out = stream or sys.stdout
    printer = AttachPrinter(out, interval_s)
    tail = EventTail(run_dir / EVENTS)
    try:
        for event in tail.backlog():
            printer.feed(event)
        printer.progress(force=True)
        if not follow:
            if not printer.view.status.finished:
                printer.print(
                    f"(the run is still going: `{PROG} attach --follow {run_dir}` keeps watching)"
                )
            return EXIT_OK
        _follow(run_dir, tail, printer, poll_s)
    finally:
        tail.close()
    return EXIT_OK


def _follow(run_dir: Path, tail: EventTail, printer: AttachPrinter, poll_s: float) -> None:
    if not tail.path.exists():
        printer.print(f"waiting for {tail.path} ...")
    quiet_polls = 0
    while not printer.view.status.finished:
        events = tail.poll()
        for event in events:
            printer.feed(event)
        quiet_polls = 0 if events or owner_alive(run_dir) is not False else quiet_polls + 1
        if quiet_polls >= 2:  # the owner is gone and nothing more came: killed, not finished
            pid, _host = run_owner(run_dir)
            printer.print(
                f"the run's process ({pid}) ended without finishing; "
                "rerun the same command to resume"
            )
            return
        printer.progress()
        if not printer.view.status.finished:
            time.sleep(poll_s)


# -- entry point --------------------------------------------------------------------------------
def attach(run_dir: Path, follow: bool) -> int:
    """``virnucpro-tui attach DIR`` without a terminal: plain lines (the CLI opens the dashboard
    itself when there is one, so this package never imports Textual)."""
    run_dir = Path(run_dir)
    try:
        check_run_dir(run_dir)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return attach_headless(run_dir, follow)
