"""The run directory's lock record: written by a run, read by attach; a reused pid is not the
run (docs/architecture.md#the-run-directory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from virnucpro_tui.errors import RunDirError
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.run.attach import owner_alive, run_owner
from virnucpro_tui.run.rundir import LockRecord, RunDir


def test_a_run_writes_who_holds_it_and_refuses_a_second(tmp_path: Path) -> None:
    first = RunDir(tmp_path / "run")
    first.acquire()
    try:
        data = json.loads(RunLayout(tmp_path / "run").lock.read_text())
        assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
        assert data["started"] == pytest.approx(psutil.Process().create_time())
        owner = run_owner(tmp_path / "run")
        assert owner is not None and owner.pid == os.getpid() and owner_alive(tmp_path / "run")
        with pytest.raises(RunDirError, match=rf"in use by another .* \(pid {os.getpid()} on "):
            RunDir(tmp_path / "run").acquire()
    finally:
        first.release()


def test_the_old_lock_format_is_still_read() -> None:
    record = LockRecord.parse("pid 4242 on gpu01 since 2026-01-01 00:00:00\n")
    assert record == LockRecord(4242, "gpu01", "2026-01-01 00:00:00", None)
    assert record.describe() == "pid 4242 on gpu01"
    assert LockRecord.parse("garbage") is None and LockRecord.parse('{"pid": "x"}') is None


def test_a_reused_pid_is_not_the_run() -> None:
    me = LockRecord.of_this_process()
    assert LockRecord.parse(me.text()) == me and me.alive() is True
    assert LockRecord(me.pid, me.host, started=me.started - 3600).alive() is False
    assert LockRecord(me.pid, "another-host", started=me.started).alive() is None


@pytest.mark.slow
def test_a_dead_process_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert LockRecord(child.pid, socket.gethostname()).alive() is False
