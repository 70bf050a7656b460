"""Where events go and how they are read back as data: ``events.jsonl`` (``JsonlWriter``,
rotated past a size), a text stream (``StreamWriter``, ``--events-jsonl -``), several sinks at
once (``Fanout``), and ``read_events`` for scripts and tests (docs/events.md)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import IO, Any

from virnucpro_tui.pool.events import Event, EventSink, encode_event


class JsonlWriter:
    """Appends events to ``events.jsonl``; rotates to ``events.jsonl.1..N`` past ``max_bytes``."""

    def __init__(self, path: str | Path, max_bytes: int = 64 * 2**20, keep: int = 3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("ab")
        if _ends_torn(self.path):  # e.g. a write cut by a full disk: start on a line of our own
            self._fh.write(b"\n")
            self._fh.flush()

    def __call__(self, event: Event) -> None:
        line = encode_event(event) + b"\n"
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line)
            self._fh.flush()
            if self._fh.tell() > self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = self.path.open("ab")

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):  # a full disk: the run reports it already
            self._fh.close()


def _ends_torn(path: Path) -> bool:
    """True when the file's last line lacks its newline."""
    with path.open("rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of every complete line of a JSONL file, as written (a torn last line is
    skipped). For scripts and tests that read events.jsonl as data; consumers use ``decode_event``."""
    events = []
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
    return events


class Fanout:
    """Delivers each event to every sink; a failing sink never stops the others."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = list(sinks)
        self._lock = threading.Lock()

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def __call__(self, event: Event) -> None:
        with self._lock:
            for sink in self.sinks:
                with contextlib.suppress(Exception):  # a broken consumer must not stop the run
                    sink(event)


class StreamWriter:
    """Writes events as JSON Lines to an open text stream (``--events-jsonl -``)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.stream.write(encode_event(event).decode() + "\n")
            self.stream.flush()
