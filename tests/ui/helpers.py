"""Helpers for the dashboard tests: screen text, waiting, configs built by the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from rich.console import Console
from textual.pilot import Pilot

from tests.helpers import SAMPLE_READS
from tests.ui.scenario import NOW
from virnucpro_tui import cli
from virnucpro_tui.pool.event_sinks import read_events
from virnucpro_tui.pool.events import Event, parse_event
from virnucpro_tui.ui.app import VirnucproApp
from virnucpro_tui.ui.controllers import ScriptedRun
from virnucpro_tui.ui.launch import live_app


def screen_text(app: VirnucproApp) -> str:
    """The whole screen (dialogs included) as plain text, one line per row."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


async def settle(pilot: Pilot, app: VirnucproApp, rounds: int = 8) -> None:
    """Let queued messages run, repaint from the view, let the repaint land: until the screen
    is the same twice in a row (a scripted run with a fixed clock converges; how many rounds
    that takes depends on the machine's load, what it converges to does not), or ``rounds``
    have passed (a live run keeps changing)."""
    previous = None
    for _ in range(rounds):
        await pilot.pause()
        app.refresh_dashboard()
        await pilot.pause()
        current = screen_text(app)
        if current == previous:
            return
        previous = current


async def wait_for(
    pilot: Pilot, predicate: Callable[[], Any], timeout: float = 60.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        await pilot.pause(0.1)


async def wait_for_exit(app: VirnucproApp, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while app.is_running:
        if time.monotonic() > deadline:
            raise AssertionError("the app did not exit")
        await asyncio.sleep(0.1)


def scripted_app(
    events: list[dict[str, Any]], read_only: bool = False, **options: Any
) -> VirnucproApp:
    """The dashboard over a fixed event list, with a fixed clock and no toasts (stable screens)."""
    options.setdefault("clock", lambda: NOW)
    options.setdefault("toasts", False)
    app = VirnucproApp(ScriptedRun(events, read_only=read_only), **options)
    app.animation_level = "none"  # a tab's underline slides: a snapshot must not catch it halfway
    return app


@asynccontextmanager
async def dashboard(
    events: list[Any], size: tuple[int, int] = (160, 48), **options: Any
) -> AsyncIterator[tuple[Pilot, VirnucproApp]]:
    """The scripted dashboard (``scripted_app``) running at ``size``, its events shown."""
    app = scripted_app(events, **options)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        yield pilot, app


def cli_run_config(args: list[str]) -> tuple[Any, list[Any], Any]:
    """The (cfg, sinks, pool_factory) that ``virnucpro-tui run ARGS`` hands to the dashboard."""
    captured: dict[str, Any] = {}

    def fake_dashboard(cfg: Any, sinks: list[Any], pool_factory: Any) -> int:
        captured.update(cfg=cfg, sinks=sinks, pool_factory=pool_factory)
        return 0

    with (
        mock.patch("virnucpro_tui.ui.launch.run_dashboard", fake_dashboard),
        mock.patch("virnucpro_tui.cli.commands.wants_ui", lambda _args: True),
    ):
        assert cli.main(["run", *args]) == 0
    return captured["cfg"], captured["sinks"], captured["pool_factory"]


def live_dashboard(args: list[str], **options: Any) -> VirnucproApp:
    """The dashboard driving a real run, configured exactly as the CLI would."""
    cfg, sinks, pool_factory = cli_run_config(args)
    return live_app(cfg, sinks, pool_factory, **options)[0]


def run_events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    return read_events(path) if path.exists() else []


def notifications(app: VirnucproApp) -> list[str]:
    return [n.message for n in app._notifications]


def first_reads(path: Path, count: int = 40) -> Path:
    """A FASTA of the first ``count`` sample reads: one shard, so a run is mostly its start-up."""
    with gzip.open(SAMPLE_READS, "rt") as fh:
        records = fh.read().split(">")[1 : count + 1]
    path.write_text("".join(">" + record for record in records))
    return path


@dataclass
class HeadlessRun:
    out: Path
    stdout: str
    stderr: str
    events_file: Path


_HEADLESS_RUNS: dict[Path, HeadlessRun] = {}


def headless_run(base: Path) -> HeadlessRun:
    """One finished demo run, made once per session under ``base``: ``run`` without a terminal
    (in this process, whose stdin and stdout are not terminals) and without ``--no-ui``, with a
    copy of the events in a file. test_headless checks its output; test_attach attaches to it."""
    if base not in _HEADLESS_RUNS:
        work = base / "headless-run"
        work.mkdir(parents=True, exist_ok=True)
        reads, out, events_file = (
            first_reads(work / "reads40.fa"),
            work / "run",
            work / "copy.jsonl",
        )
        args = [
            "run",
            str(reads),
            "--out",
            str(out),
            "--demo",
            "--devices",
            "cpu:1",
            "--events-jsonl",
            str(events_file),
        ]
        stdout, stderr = io.StringIO(), io.StringIO()
        with (
            mock.patch("sys.stdin", io.StringIO()),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            code = cli.main(args)
        assert code == 0, stderr.getvalue()
        _HEADLESS_RUNS[base] = HeadlessRun(out, stdout.getvalue(), stderr.getvalue(), events_file)
    return _HEADLESS_RUNS[base]


# The required fields a test leaves out, filled with neutral values (the test names what matters).
NEUTRAL_FIELDS: dict[str, dict[str, Any]] = {
    "worker_state": {"device": ""},
    "heartbeat": {"state": "busy", "shard": None, "since_progress": 0.0, "pid": 0},
    "progress": {
        "shard": 0,
        "stage": "start",
        "frames_done": 0,
        "frames_total": 0,
        "tokens": 0,
        "seconds": 0.0,
    },
    "gpu_memory": {"kind": "cpu", "allocated": 0, "reserved": 0, "peak": 0, "free": 0, "total": 0},
    "shard_done": {
        "shard": 0,
        "frames": 0,
        "seconds": 0.0,
        "tokens": 0,
        "virus_frames": 0,
        "others_frames": 0,
        "histogram": [],
        "top": [],
    },
    "model_load": {"source": ""},
    "run_started": {"out": ""},
    "run_done": {"seconds": 0.0, "frames": 0, "resumable": True, "jobs": {}},
}


def ev(
    type_: str, ts: float = 0.0, worker: int | None = None, job: str | None = None, **fields: Any
) -> Event:
    """A valid event of ``type_`` (the fields given, neutral values for the required others)."""
    record = {"type": type_, "ts": ts, "worker": worker, "job": job}
    record |= NEUTRAL_FIELDS.get(type_, {}) | fields
    event = parse_event(record)
    assert event is not None, f"not a valid event: {record}"
    return event


def model_loaded(
    ts: float, worker: int, model: str, seconds: float, bytes_on_device: int, **fields: Any
) -> Event:
    """The ``model_load`` event of phase ``done``: ``model`` loaded on ``worker``."""
    return ev(
        "model_load",
        ts,
        worker,
        model=model,
        phase="done",
        seconds=seconds,
        bytes_on_device=bytes_on_device,
        **fields,
    )
