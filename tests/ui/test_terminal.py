"""``virnucpro-tui run`` in a real (pseudo-)terminal: the dashboard starts by itself, draws in
256 colours, Ctrl+C stops the run (twice: abandons the shard in flight), the screen is restored,
the summary printed, and no worker is left behind."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shlex
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.helpers import (
    SAMPLE_READS,
    assert_no_live_processes,
    cli_env,
    kill_tree,
    start_cli_on_terminal,
    worker_pids,
)
from tests.ui.helpers import run_events

pytestmark = [pytest.mark.slow, pytest.mark.ui]
ALT_SCREEN_ON, ALT_SCREEN_OFF = b"\x1b[?1049h", b"\x1b[?1049l"


def open_terminal(columns: int, rows: int) -> tuple[int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


def test_dashboard_in_a_terminal_stops_on_ctrl_c_twice_and_restores_it(
    tmp_path: Path, demo_models
) -> None:
    out = tmp_path / "run"
    env = {**cli_env(demo_models.root, faults={"sleep_per_batch_s": 0.3}), "TERM": "xterm-256color"}
    env.pop("COLORTERM", None)
    master, slave = open_terminal(100, 30)
    args = [
        "run",
        str(SAMPLE_READS),
        "--out",
        str(out),
        "--demo",
        "--devices",
        "cpu:1",
        "--shard-size",
        "16",
    ]
    proc = start_cli_on_terminal(args, env, slave, start_new_session=True)
    screen, interrupted = b"", False
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                screen += data
            if not interrupted and any(e["type"] == "shard_done" for e in run_events(out)):
                os.write(master, b"\x03")  # Ctrl+C, as the terminal sends it in raw mode: stop
                time.sleep(0.3)
                os.write(master, b"\x03")  # and again: abandon the shard in flight
                interrupted = True
        assert proc.wait(timeout=60) == 130
    finally:
        kill_tree(proc)
        os.close(master)
    assert interrupted
    assert ALT_SCREEN_ON in screen and b"\x1b[38;5;" in screen  # the dashboard drew, in 256 colours
    after = screen.rsplit(ALT_SCREEN_OFF, 1)[1].decode("utf-8", "replace").replace("\r\n", "\n")
    assert (
        "run interrupted:" in after
        and f"resumable: rerun the same command (same --out {out})" in after
    )
    command = shlex.join([sys.executable, "-m", "virnucpro_tui", *args])
    assert f"\n  {command}\n" in after  # the exact command that resumes it, as attach prints
    assert "\x1b[38;5;" not in after  # the summary is plain text
    assert b"worker 0 generation 0 pid" not in screen  # the worker's own output went to its log
    assert "worker 0 generation 0 pid" in (out / "logs" / "worker-0.log").read_text()
    done = run_events(out)[-1]
    assert done["type"] == "run_done" and done["status"] == "interrupted" and done["resumable"]
    assert_no_live_processes(worker_pids(out))


def controlling_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is its stdin, so that the
    terminal hanging up sends it SIGHUP (as when an ssh session or a tmux pane dies)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_attach_leaves_when_its_terminal_hangs_up(tmp_path: Path, demo_models) -> None:
    """The terminal of a dashboard hangs up: the process ends (before, Textual's output thread
    died writing to the dead terminal and the app's shutdown waited for it forever, in about
    two hangups out of five)."""
    from tests.ui.helpers import headless_run

    run = headless_run(tmp_path).out
    env = {**cli_env(demo_models.root), "TERM": "xterm-256color"}
    for _attempt in range(5):
        master, slave = open_terminal(120, 40)
        attach = ["attach", str(run)]
        proc = start_cli_on_terminal(attach, env, slave, preexec_fn=controlling_terminal)
        screen, deadline = b"", time.time() + 60
        while b"Run complete" not in screen and time.time() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                screen += os.read(master, 65536)
        assert b"Run complete" in screen  # the dashboard is up, on its completion view
        os.close(master)  # the terminal hangs up
        try:
            assert proc.wait(timeout=20) is not None
        finally:
            kill_tree(proc)
