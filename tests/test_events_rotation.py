"""events.jsonl is bounded: JsonlWriter rotates it to events.jsonl.1..N past max_bytes and keeps
N old files (docs/events.md). Nothing is lost or repeated at a rotation boundary,
and ``read_events`` reads the current file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from virnucpro_tui.pool.event_sinks import JsonlWriter, read_events
from virnucpro_tui.pool.events import WarningEvent

MAX_BYTES = 2_000


def numbered(i: int) -> WarningEvent:
    """Event ``i`` (its ``shard``), of a length that varies like real events do."""
    return WarningEvent(worker=i % 4, shard=i, message="x" * (i % 37))


def files_oldest_first(path: Path, keep: int) -> list[Path]:
    rotated = [path.with_name(f"{path.name}.{k}") for k in range(keep, 0, -1)]
    return [p for p in rotated if p.exists()] + [path]


def seqs(paths: list[Path]) -> list[int]:
    return [e["shard"] for p in paths for e in read_events(p)]


def test_rotation_loses_and_repeats_nothing_while_it_fits(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=MAX_BYTES, keep=3)
    n = 0
    while not path.with_name("events.jsonl.3").exists():
        writer(numbered(n))
        n += 1
    writer.close()
    files = files_oldest_first(path, 3)
    assert [p.name for p in files] == [
        "events.jsonl.3",
        "events.jsonl.2",
        "events.jsonl.1",
        "events.jsonl",
    ]
    assert seqs(files) == list(range(n))  # every event once, in order, across three boundaries
    for p in files[:-1]:
        text = p.read_text()
        assert text.endswith("\n")  # rotated only after whole lines
        last_line = len(text.splitlines()[-1]) + 1
        assert MAX_BYTES < len(text.encode()) <= MAX_BYTES + last_line


def test_rotation_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=MAX_BYTES, keep=3)
    total = 2_000
    for i in range(total):
        writer(numbered(i))
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"
    ]  # fmt: skip
    kept = seqs(files_oldest_first(path, 3))
    assert kept == list(range(total - len(kept), total))  # the newest, contiguous: no gap
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 4 * (MAX_BYTES + 200)


def test_read_events_reads_the_current_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=MAX_BYTES, keep=3)
    for i in range(100):
        writer(numbered(i))
    current = read_events(path)
    assert current and current[-1]["shard"] == 99
    assert current == [json.loads(line) for line in path.read_text().splitlines()]
    # a line being written (torn) is left for the next read, not misread
    with path.open("a") as fh:
        fh.write('{"v":1,"ts":1,"type":"heartbeat","seq":')
    assert read_events(path) == current
    writer.close()


def test_writers_from_several_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=MAX_BYTES * 10, keep=50)

    def write(offset: int) -> None:
        for i in range(500):
            writer(numbered(offset + i))

    threads = [threading.Thread(target=write, args=(k * 1_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    got = seqs(files_oldest_first(path, 50))
    assert sorted(got) == sorted(k * 1_000 + i for k in range(4) for i in range(500))


def test_a_closed_writer_drops_events_quietly(tmp_path: Path) -> None:
    writer = JsonlWriter(tmp_path / "events.jsonl", max_bytes=MAX_BYTES)
    writer(numbered(0))
    writer.close()
    writer(numbered(1))  # late events from a stopping pool must not raise
    assert seqs([tmp_path / "events.jsonl"]) == [0]
