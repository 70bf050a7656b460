"""Reading a run that another process executes, or has finished: ``virnucpro-tui attach DIR``.

The run's ``events.jsonl`` is tailed like ``tail -F``: the file may not exist yet, its last line
may be half written, and it is rotated to ``events.jsonl.1`` past its size limit. The events fold
into the same RunView as the live dashboard and the headless reporter, so all three agree. The
front ends use this module: ``headless.attach`` (plain lines) and the dashboard's attached mode.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import BinaryIO

from virnucpro_tui.errors import InputError
from virnucpro_tui.pool.events import Event, StrEnum, decode_event
from virnucpro_tui.pool.layout import EVENTS, LOCK, MANIFEST, RunLayout
from virnucpro_tui.run.rundir import LockRecord

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


def run_owner(run_dir: Path) -> LockRecord | None:
    """Who last held the run directory's lock (pid, host, process start time)."""
    return LockRecord.read(RunLayout(run_dir).lock)


def owner_alive(run_dir: Path) -> bool | None:
    """Whether the process running ``run_dir`` is alive: None when it runs on another host
    or nobody is named."""
    owner = run_owner(run_dir)
    return owner.alive() if owner is not None else None


class Process(StrEnum):
    """What the run directory's lock record says about the run's process."""

    ALIVE = "alive"
    GONE = "gone"  # not running on this host any more (its pid is free or another process's)
    ELSEWHERE = "elsewhere"  # on another host: cannot tell
    UNKNOWN = "unknown"  # no lock record


class RunWatch:
    """A run read from its directory by another process: its events (``EventTail``), whether
    its process is alive (the lock record: pid, host and process start time, so a reused pid
    is not taken for the run), and the command that resumes it (from the manifest)."""

    def __init__(self, run_dir: Path, check_every_s: float = 2.0) -> None:
        self.run_dir = Path(run_dir)
        self.layout = RunLayout(self.run_dir)
        self.tail = EventTail(self.layout.events)
        self.check_every_s = check_every_s
        self.owner: LockRecord | None = None
        self._process = Process.UNKNOWN
        self._checked = -check_every_s

    def process(self, now: float | None = None) -> Process:
        """The process's state, from the lock record read at most every ``check_every_s``."""
        now = time.monotonic() if now is None else now
        if now - self._checked >= self.check_every_s:
            self._checked = now
            self.owner = LockRecord.read(self.layout.lock)
            alive = self.owner.alive() if self.owner is not None else None
            if self.owner is None:
                self._process = Process.UNKNOWN
            elif alive is None:
                self._process = Process.ELSEWHERE
            else:
                self._process = Process.ALIVE if alive else Process.GONE
        return self._process

    def owner_text(self) -> str | None:
        """``pid 1234 on host`` and, once that process is gone, ``(gone)``."""
        if self.owner is None:
            return None
        gone = " (gone)" if self._process == Process.GONE else ""
        return f"{self.owner.describe()}{gone}"

    def resume_command(self) -> str | None:
        return resume_command(self.layout.manifest)

    def close(self) -> None:
        self.tail.close()


def resume_command_of(run_dir: str | Path) -> str | None:
    """``resume_command`` for the run in ``run_dir`` (what a stopped run prints, as ``attach``)."""
    return resume_command(RunLayout(Path(run_dir)).manifest) if str(run_dir) else None


def resume_command(manifest_path: Path) -> str | None:
    """The shell command that resumes a run: the one the manifest recorded, without
    ``--restart`` (which would discard the run), run from the directory it was run from."""
    try:
        manifest = json.loads(manifest_path.read_text())
        argv = [str(a) for a in manifest["command"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not argv:
        return None
    program = argv[0]
    if Path(program).name == "__main__.py":  # python -m virnucpro_tui
        argv[:1] = [str(manifest.get("executable") or "python3"), "-m", "virnucpro_tui"]
    argv = [a for a in argv if a != "--restart"]
    command = shlex.join(argv)
    cwd = manifest.get("cwd")
    if isinstance(cwd, str) and cwd and Path(cwd) != Path.cwd():
        command = f"cd {shlex.quote(cwd)} && {command}"
    return command
