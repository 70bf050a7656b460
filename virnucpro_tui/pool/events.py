"""The event stream (docs/events.md), versioned and stable as JSON Lines. See docs/events.md.

Events are plain dicts so they pickle cheaply across processes and serialise to JSON as is.
Every event has ``v`` (schema version), ``ts`` (Unix time), ``type``, ``worker`` and ``job``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
Event = dict[str, Any]
EventSink = Callable[[Event], None]

WORKER_STATES = (
    "starting",
    "idle",
    "loading",
    "busy",
    "clearing",
    "stopped",
    "crashed",
    "restarting",
)
EVENT_TYPES = (
    # the minimum set (docs/events.md)
    "worker_state", "model_load", "progress", "gpu_memory", "cache_cleared", "shard_done", "oom",
    "error", "heartbeat", "job_started", "job_done",
    # beyond the minimum
    "run_started", "run_done", "run_paused", "run_resumed", "gpu_telemetry", "shard_requeued",
    "shard_skipped", "job_prepared", "warning", "job_added",
)  # fmt: skip


def make_event(
    type_: str, worker: int | None = None, job: str | None = None, **fields: Any
) -> Event:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {
        "v": SCHEMA_VERSION,
        "ts": round(time.time(), 3),
        "type": type_,
        "worker": worker,
        "job": job,
        **fields,
    }


class JsonlWriter:
    """Appends events to ``events.jsonl``; rotates to ``events.jsonl.1..N`` past ``max_bytes``."""

    def __init__(self, path: str | Path, max_bytes: int = 64 * 2**20, keep: int = 3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        if _ends_torn(self.path):  # e.g. a write cut by a full disk: start on a line of our own
            self._fh.write("\n")
            self._fh.flush()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
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
        self._fh = self.path.open("a", encoding="utf-8")

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


def read_events(path: str | Path) -> list[Event]:
    """All complete events of a JSONL file (a torn last line is skipped)."""
    events = []
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
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

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.stream.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
            self.stream.flush()
