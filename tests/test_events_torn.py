"""A write cut by a full disk leaves a torn last line; the next run's events stay readable."""

from __future__ import annotations

from pathlib import Path

from virnucpro_tui.pool.event_sinks import JsonlWriter, read_events
from virnucpro_tui.pool.events import encode_event, make_event


def test_writer_starts_a_new_line_after_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = make_event("run_started", out="a")
    path.write_bytes(encode_event(first) + b'\n{"v": 1, "type": "prog')  # cut mid-line
    writer = JsonlWriter(path)
    second = make_event("run_started", out="b")
    writer(second)
    writer.close()
    # the torn line is skipped, nothing after it lost
    assert [e["out"] for e in read_events(path)] == ["a", "b"]
    JsonlWriter(path).close()  # an intact file gets no extra blank line
    assert path.read_bytes().endswith(encode_event(second) + b"\n")
