"""``virnucpro-tui attach``: tailing events.jsonl, the read-only dashboard on a live and on a
finished run, and the plain-line form."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    assert_no_live_processes,
    cli,
    cli_env,
    kill_tree,
    start_cli,
    wait_for_event,
    worker_pids,
)
from tests.ui import scenario
from tests.ui.helpers import (
    first_reads,
    headless_run,
    notifications,
    run_events,
    settle,
    wait_for,
)
from virnucpro_tui.console.headless import attach, attach_headless
from virnucpro_tui.pool.event_sinks import JsonlWriter
from virnucpro_tui.pool.events import Heartbeat, WorkerState
from virnucpro_tui.run.attach import EventTail, Process, RunWatch
from virnucpro_tui.run.rundir import LockRecord
from virnucpro_tui.ui.app import READ_ONLY_NOTICE, VirnucproApp
from virnucpro_tui.ui.controllers import AttachedRun
from virnucpro_tui.ui.screens import CompletionScreen
from virnucpro_tui.ui.widgets import HeaderBar, OverallProgress, WorkerPanel

OUTPUTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "sequence_summary.tsv")


def numbered(n: int) -> Heartbeat:
    return Heartbeat(worker=0, state=WorkerState.BUSY, shard=n, since_progress=0.0, pid=1)


# -- tailing ------------------------------------------------------------------------------------
def test_tail_waits_for_the_file_and_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.backlog() == [] and tail.poll() == []
    line = json.dumps(numbered(1).to_json())
    with path.open("w") as fh:
        fh.write(line[:20])
        fh.flush()
        assert tail.poll() == []  # a torn line waits
        fh.write(line[20:] + "\n" + "not json\n" + json.dumps(numbered(2).to_json())[:5])
        fh.flush()
        assert [e.shard for e in tail.poll()] == [1]  # the bad line is skipped, the torn one waits
        fh.write(json.dumps(numbered(2).to_json())[5:] + "\n")
    assert [e.shard for e in tail.poll()] == [2]
    tail.close()


def test_tail_follows_rotation_without_losing_or_repeating_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=600, keep=3)
    tail = EventTail(path)
    seen = []
    for n in range(40):
        writer(numbered(n))
        if n % 3 == 0:
            seen += [e.shard for e in tail.poll()]
    writer.close()
    seen += [e.shard for e in tail.poll()]
    assert (tmp_path / "events.jsonl.1").exists()  # it did rotate, several times
    assert seen == list(range(40))


def test_backlog_reads_rotated_files_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=1000, keep=3)
    for n in range(12):
        writer(numbered(n))
    tail = EventTail(path)
    assert [e.shard for e in tail.backlog()] == list(range(12))
    writer(numbered(12))
    assert [e.shard for e in tail.poll()] == [12]
    writer.close()


def test_tail_starts_over_when_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(numbered(1).to_json()) + "\n" + json.dumps(numbered(2).to_json()) + "\n"
    )
    tail = EventTail(path)
    assert len(tail.backlog()) == 2
    path.unlink()  # --restart clears the run directory
    path.write_text(json.dumps(numbered(3).to_json()) + "\n")
    assert [e.shard for e in tail.poll()] == [3]


@pytest.mark.slow
def test_attach_refuses_what_is_not_a_run_directory(tmp_path: Path) -> None:
    missing = cli(["attach", str(tmp_path / "nope")], env={**cli_env(tmp_path)})
    assert (
        missing.returncode == 2
        and missing.stderr.count("\n") == 1
        and "no such directory" in missing.stderr
    )
    (tmp_path / "empty").mkdir()
    empty = cli(["attach", str(tmp_path / "empty"), "--no-ui"], env={**cli_env(tmp_path)})
    assert empty.returncode == 2 and "not a virnucpro-tui run directory" in empty.stderr
    assert "Traceback" not in missing.stderr + empty.stderr


# -- a finished run -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, demo_models) -> Path:
    return headless_run(tmp_path_factory.getbasetemp()).out


@pytest.mark.slow
def test_attach_no_ui_prints_a_finished_run(finished_run: Path) -> None:
    stream = io.StringIO()
    assert attach_headless(finished_run, follow=False, stream=stream) == 0
    text = stream.getvalue()
    assert text.startswith(f"virnucpro-tui run -> {finished_run}")
    assert "worker 0: esm loaded in" in text and "job reads40: done" in text
    assert "run complete:" in text and "DEMO:" in text
    for name in OUTPUTS:
        assert f"{name}: {finished_run / name}" in text
    assert "\x1b" not in text


@pytest.mark.slow
def test_attach_dashboard_shows_a_finished_run(finished_run: Path) -> None:
    async def watch() -> None:
        app = VirnucproApp(AttachedRun(finished_run), demo=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot, lambda: isinstance(app.screen, CompletionScreen), 20, "the completion view"
            )
            for name in OUTPUTS:
                assert str(finished_run / name) in app.screen.shown
            await pilot.press("escape")
            await settle(pilot, app)
            header = app.query_one(HeaderBar).shown
            assert "COMPLETE" in header and "attached, read-only" in header
            assert "ESM-2 loaded" in app.query_one("#worker-0", WorkerPanel).shown
            assert "100.0%" in app.query_one(OverallProgress).shown
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(watch())


# -- a live run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_attach_follows_a_live_run_to_its_end(tmp_path: Path, demo_models) -> None:
    out = tmp_path / "run"
    env = cli_env(demo_models.root, faults={"sleep_per_batch_s": 0.2})
    reads = first_reads(tmp_path / "reads60.fa", 60)
    args = ["run", str(reads), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1"]
    proc = start_cli([*args, "--shard-size", "8"], env)
    plain = io.StringIO()
    follower = threading.Thread(
        target=lambda: attach_headless(out, follow=True, stream=plain, poll_s=0.1)
    )
    try:
        wait_for_dir(out)
        follower.start()
        asyncio.run(watch_live(out))
        assert proc.wait(timeout=120) == 0
        follower.join(timeout=30)
        assert not follower.is_alive()  # --follow ends with the run
    finally:
        kill_tree(proc)
    text = plain.getvalue()
    frames = run_events(out)[-1]["frames"]
    assert (
        f"run complete: {frames:,} frames" in text and str(out / "prediction_results.txt") in text
    )


def wait_for_dir(path: Path, timeout: float = 30) -> None:
    import time

    deadline = time.time() + timeout
    while not path.is_dir():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


async def watch_live(out: Path) -> None:
    app = VirnucproApp(AttachedRun(out, poll_s=0.1), demo=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.frames_done > 0, 120, "first progress")
        await settle(pilot, app)
        app.refresh_dashboard()  # synchronous: the widgets show the view as it is now
        first = app.view.frames_done
        assert "RUNNING" in app.query_one(HeaderBar).shown
        assert f"{first:,}/" in app.query_one(OverallProgress).shown
        await pilot.press("p")
        assert READ_ONLY_NOTICE in notifications(app)
        await wait_for(pilot, lambda: app.view.frames_done > first, 60, "progress moving")
        await wait_for(
            pilot, lambda: isinstance(app.screen, CompletionScreen), 120, "the finished state"
        )
        assert (
            app.view.status == "complete" and app.view.frames_done == app.view.frames_total > first
        )
        assert str(out / "prediction_results.txt") in app.screen.shown
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.slow
def test_attach_entry_point_without_a_terminal(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attach(finished_run, follow=False) == 0
    out = capsys.readouterr().out
    assert "run complete:" in out and str(finished_run / "prediction_results.txt") in out


@pytest.mark.ui
def test_attach_dashboard_waits_for_a_run_that_has_not_written_yet(tmp_path: Path) -> None:
    run_dir = tmp_path / "queued"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("pid 999999 on elsewhere since 2026-01-01 00:00:00\n")
    events = scenario.mid_run_events()

    async def watch() -> None:
        app = VirnucproApp(AttachedRun(run_dir, poll_s=0.05), clock=lambda: scenario.NOW)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            header = app.query_one(HeaderBar).shown
            assert "WAITING" in header and str(run_dir / "events.jsonl") in header
            assert "pid 999999 on elsewhere" in header  # another host: cannot tell if it is alive
            writer = JsonlWriter(run_dir / "events.jsonl")
            for event in events:
                writer(event)
            writer.close()
            await wait_for(pilot, lambda: app.view.events_seen == len(events), 20, "the events")
            await settle(pilot, app)
            assert "RUNNING" in app.query_one(HeaderBar).shown
            assert (
                "worker 1 · GPU 1 · NVIDIA H200"
                in app.query_one("#worker-1", WorkerPanel).title_text.plain
            )

    asyncio.run(watch())


# -- liveness: a run whose process died ---------------------------------------------------------
def test_the_lock_record_tells_a_live_run_from_a_dead_one_and_a_reused_pid(tmp_path: Path) -> None:
    import socket

    import psutil

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = run_dir / ".lock"
    me = psutil.Process()
    cases = [
        (LockRecord(os.getpid(), socket.gethostname(), "", me.create_time()), Process.ALIVE),
        # the same pid, another process start: a pid reused after the run died
        (LockRecord(os.getpid(), socket.gethostname(), "", me.create_time() - 3600), Process.GONE),
        (LockRecord(os.getpid(), "another-host", "", me.create_time()), Process.ELSEWHERE),
    ]
    for record, expected in cases:
        lock.write_text(record.text())
        assert RunWatch(run_dir).process() == expected, record
    lock.unlink()
    assert RunWatch(run_dir).process() == Process.UNKNOWN


def start_slow_run(tmp_path: Path, demo_models, sleep_s: float = 0.3) -> tuple[Path, Any, list]:
    out = tmp_path / "run"
    reads = first_reads(tmp_path / "reads60.fa", 60)
    args = ["run", str(reads), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1"]
    args += ["--shard-size", "8"]
    env = cli_env(demo_models.root, faults={"sleep_per_batch_s": sleep_s})
    return out, start_cli(args, env), args


@pytest.mark.slow
def test_attach_to_a_run_killed_with_sigkill_shows_it_dead(tmp_path: Path, demo_models) -> None:
    """kill -9 of the run's main process (its workers exit by themselves): the attached
    dashboard goes from RUNNING to DEAD (workers gone, no ETA, the command that resumes it) and
    stays so; --follow stops with exit 1; --no-ui says "still running" only while it is."""
    # slow enough to be still running when it is killed, on a loaded machine too
    out, proc, _args = start_slow_run(tmp_path, demo_models, sleep_s=1.0)
    plain, codes = io.StringIO(), []
    follower = threading.Thread(
        target=lambda: codes.append(
            attach_headless(out, True, plain, poll_s=0.1, interval_s=0.5, check_every_s=0.2)
        )
    )
    try:
        wait_for_event(out, lambda e: e["type"] == "shard_done", proc=proc)
        env = cli_env(demo_models.root)
        alive = cli(["attach", str(out), "--no-ui"], env)
        assert alive.returncode == 0 and "the run is still running" in alive.stdout
        follower.start()
        shown = asyncio.run(watch_the_kill(out, proc))
        follower.join(timeout=30)
        assert not follower.is_alive() and codes == [1]
        dead = cli(["attach", str(out), "--no-ui"], env)
    finally:
        kill_tree(proc)
    header_alive, header_dead, header_later, panel_dead = shown
    assert "RUNNING" in header_alive and "DEAD" not in header_alive
    assert "DEAD" in header_dead and "RUNNING" not in header_dead
    assert f"the run's process (pid {proc.pid}) ended without finishing" in header_dead
    assert "ETA none (not running)" in header_dead and "frames/s average" in header_dead
    assert "resume: " in header_dead and f"--out {out}" in header_dead
    assert header_later == header_dead  # it stays dead; the elapsed time does not run on
    assert "GONE" in panel_dead and "gone (pid" in panel_dead and "silent for" not in panel_dead
    text = plain.getvalue()
    assert "run dead: " in text and f"rerun the same command (same --out {out})" in text
    assert "-m virnucpro_tui run" in text
    assert dead.returncode == 1 and "still running" not in dead.stdout
    assert f"the run's process (pid {proc.pid}) ended without finishing" in dead.stdout
    # one elapsed time in every view: up to the run's last event, however late each one looks
    shown = re.findall(r"elapsed (\d+:\d\d(?::\d\d)?)", header_dead)
    said = re.findall(r"run dead: [\d,]+ frames in (\d+:\d\d(?::\d\d)?)", dead.stdout + text)
    assert len(shown) == 1 and said and set(said) == set(shown), (shown, said)
    assert_no_live_processes(worker_pids(out))


async def watch_the_kill(out: Path, proc: Any) -> tuple[str, str, str, str]:
    app = VirnucproApp(AttachedRun(out, poll_s=0.1, check_every_s=0.2), demo=True, toasts=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.frames_done > 0, 60, "the run's progress")
        await settle(pilot, app)
        alive = " ".join(app.query_one(HeaderBar).shown.split())
        assert proc.poll() is None and not app.view.status.finished, "ended before the kill"
        os.kill(proc.pid, signal.SIGKILL)  # the main process only: the workers notice by themselves
        proc.wait(timeout=10)
        await wait_for(pilot, lambda: app.view.dead, 30, "the run shown dead")
        await settle(pilot, app)
        dead = " ".join(app.query_one(HeaderBar).shown.split())
        panel = panel_title_and_text(app, 0)
        await pilot.pause(2.0)
        await settle(pilot, app)
        later = " ".join(app.query_one(HeaderBar).shown.split())
        await pilot.press("q")
    assert app.return_code == 1  # leaving a dead run's dashboard: the run did not complete
    return alive, dead, later, panel


def panel_title_and_text(app: VirnucproApp, worker: int) -> str:
    panel = app.query_one(f"#worker-{worker}", WorkerPanel)
    return f"{panel.title_text.plain}\n{panel.shown}"


@pytest.mark.slow
def test_attach_across_a_resume_counts_every_frame_once(tmp_path: Path, demo_models) -> None:
    """kill -9 mid-run, then the command attach gives resumes it: attached to the resumed run,
    the totals are the job's frames (never the dead segment's added to them) and the workers
    shown are the new ones."""
    out, proc, _args = start_slow_run(tmp_path, demo_models, sleep_s=0.2)
    try:
        wait_for_event(out, lambda e: e["type"] == "shard_done", proc=proc)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, workers included
        proc.wait(timeout=10)
    finally:
        kill_tree(proc)
    first_pids = worker_pids(out)
    killed = io.StringIO()
    assert attach_headless(out, follow=False, stream=killed) == 1
    command = next(
        line.strip() for line in killed.getvalue().splitlines() if "-m virnucpro_tui" in line
    )
    resumed = subprocess.Popen(
        shlex.split(command),
        env=cli_env(demo_models.root, faults={"sleep_per_batch_s": 0.1}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        seen = asyncio.run(watch_the_resume(out))
        assert resumed.wait(timeout=180) == 0
    finally:
        kill_tree(resumed)
    frames = next(e for e in reversed(run_events(out)) if e["type"] == "job_done")["frames"]
    assert max(seen["done"]) <= frames and max(seen["totals"]) <= frames  # never doubled
    assert seen["final"] == (frames, frames)
    new_pids = worker_pids(out) - first_pids
    assert new_pids and seen["pids"] <= new_pids  # no pid of the dead segment on show
    after = io.StringIO()
    assert attach_headless(out, follow=False, stream=after) == 0
    assert f"run complete: {frames:,} frames" in after.getvalue()
    assert f"100.0% {frames:,}/{frames:,} frames" in after.getvalue()


async def watch_the_resume(out: Path) -> dict[str, Any]:
    app = VirnucproApp(AttachedRun(out, poll_s=0.1, check_every_s=0.2), demo=True, toasts=False)
    seen: dict[str, Any] = {"done": [], "totals": [], "pids": set()}
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.segments == 2, 120, "the resumed run")
        while not app.view.status.finished:
            totals = app.view.totals()
            seen["done"].append(totals.done)
            seen["totals"].append(totals.total or 0)
            seen["pids"] |= {w.pid for w in app.view.workers.values() if w.pid}
            await pilot.pause(0.2)
        totals = app.view.totals()
        seen["final"] = (totals.done, totals.total)
        seen["pids"] |= {w.pid for w in app.view.workers.values() if w.pid}
    return seen
