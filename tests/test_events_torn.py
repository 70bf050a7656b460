"""A write cut by a full disk leaves a torn last line; the next run's events stay readable."""

from __future__ import annotations

import json
from pathlib import Path

from virnucpro_tui.pool.events import JsonlWriter, make_event, read_events


def test_writer_starts_a_new_line_after_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = make_event("run_started", out="a")
    path.write_text(json.dumps(first) + "\n" + '{"v": 1, "type": "prog')  # cut mid-line
    writer = JsonlWriter(path)
    second = make_event("run_started", out="b")
    writer(second)
    writer.close()
    assert read_events(path) == [first, second]  # the torn line is skipped, nothing after lost
    JsonlWriter(path).close()  # an intact file gets no extra blank line
    assert path.read_text().endswith(json.dumps(second, separators=(",", ":")) + "\n")
