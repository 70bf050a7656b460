"""The headless front end: plain progress lines on a TTY and off one, chosen automatically
without a terminal or with TERM=dumb, and ``--events-jsonl -`` on stdout."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import time
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_CONTIGS, SAMPLE_READS, cli, cli_env, start_cli_on_terminal
from tests.ui import scenario
from tests.ui.helpers import first_reads, headless_run
from virnucpro_tui.cli import main
from virnucpro_tui.console.headless import HeadlessReporter
from virnucpro_tui.pool.event_sinks import read_events
from virnucpro_tui.pool.events import parse_event
from virnucpro_tui.run.describe import log_description

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n
PROGRESS = re.compile(  # a percentage and a total (``~``: an estimate) on every line, never "?"
    r"^\d\d:\d\d:\d\d +\d+\.\d% [\d,]+/~?[\d,]+ frames \| [\d,.]+ frames/s"
    r"( average)? \| ETA "
)


@pytest.fixture(scope="module")
def small_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return first_reads(tmp_path_factory.mktemp("input") / "reads40.fa")


def feed_slowly(
    reporter: HeadlessReporter, events: list[dict], pause_every: int, pause_s: float
) -> None:
    for i, event in enumerate(events):
        reporter(event)
        if i % pause_every == 0:
            time.sleep(pause_s)


def test_reporter_off_a_tty_writes_plain_lines_every_interval() -> None:
    stream = io.StringIO()
    assert HeadlessReporter(stream).interval_s == 5.0  # the default off a terminal
    reporter = HeadlessReporter(stream, interval_s=0.05)
    events = scenario.finished_events()
    feed_slowly(reporter, events, pause_every=len(events) // 6, pause_s=0.06)
    text = stream.getvalue()
    lines = text.splitlines()
    assert not CONTROL.search(text) and "\x1b" not in text
    progress = [line for line in lines if PROGRESS.match(line)]
    assert len(progress) >= 4  # one per interval, not one per event
    assert lines[0] == f"virnucpro-tui run -> {scenario.OUT} on cuda:0, cuda:1"
    assert "worker 0: esm compiling and warming up (the first shard waits for it)" in lines
    assert "worker 0: esm warmed up in 23.9 s" in lines
    assert "worker 0: esm loaded in 7.7 s (5.3 GiB, bfloat16), then warm-up 23.9 s" in lines
    assert "worker 1: out of memory on a batch of 512, retrying in halves" in lines
    assert progress[-1].split(" ", 1)[1].startswith("100.0% 3,349,116/3,349,116 frames")
    assert "run complete: 3,349,116 frames in 35:21" in lines
    assert f"    prediction_results.txt: {scenario.OUT}/gut_contigs/prediction_results.txt" in lines


def test_reporter_on_a_tty() -> None:
    master, slave = pty.openpty()
    with os.fdopen(slave, "w", encoding="utf-8") as stream:
        assert HeadlessReporter(stream).interval_s == 2.0  # a person is watching: more often
        reporter = HeadlessReporter(stream, interval_s=0.05)
        events = scenario.finished_events()
        feed_slowly(reporter, events, pause_every=len(events) // 4, pause_s=0.06)
        text = read_all(master).replace("\r\n", "\n")
    os.close(master)
    lines = text.splitlines()
    assert "\x1b" not in text and not CONTROL.search(text)
    assert sum(1 for line in lines if PROGRESS.match(line)) >= 3
    assert (
        lines[-1].startswith("    sequence_summary.tsv: ")
        and "run complete: 3,349,116 frames in 35:21" in lines
    )


def read_all(fd: int, quiet_s: float | None = 0.2) -> str:
    """What ``fd`` gives until it is quiet for ``quiet_s`` seconds (None: until it closes)."""
    chunks = []
    while select.select([fd], [], [], quiet_s)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def assert_plain_run_output(text: str, out: Path) -> None:
    lines = text.splitlines()
    assert lines[0].startswith(f"virnucpro-tui run -> {out} on CPU worker 0")
    assert "DEMO: Demo models with random weights: scores are NOT biological predictions." in lines
    assert any(PROGRESS.match(line) for line in lines)
    assert any(line.startswith("run complete: ") for line in lines)
    assert f"    prediction_results.txt: {out / 'prediction_results.txt'}" in lines
    assert "\x1b" not in text and not CONTROL.search(text)


@pytest.mark.slow
def test_without_a_terminal_the_run_is_headless(
    tmp_path_factory: pytest.TempPathFactory, demo_models
) -> None:
    run = headless_run(tmp_path_factory.getbasetemp())  # stdin and stdout are not terminals
    assert run.stdout == ""  # progress goes to stderr; stdout stays free for data
    assert_plain_run_output(run.stderr, run.out)
    copied = [json.loads(line) for line in run.events_file.read_text().splitlines()]
    assert copied == [
        json.loads(line) for line in (run.out / "events.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
def test_term_dumb_on_a_terminal_is_headless(
    tmp_path: Path, demo_models, small_input: Path
) -> None:
    out = tmp_path / "run"
    env = {**cli_env(demo_models.root), "TERM": "dumb"}
    master, slave = pty.openpty()
    args = ["run", str(small_input), "--out", str(out), "--demo", "--devices", "cpu:1"]
    proc = start_cli_on_terminal(args, env, slave, start_new_session=True)
    text = read_all(master, quiet_s=None).replace("\r\n", "\n")  # until the child closes it
    os.close(master)
    assert proc.wait(timeout=120) == 0
    assert_plain_run_output(text, out)


@pytest.mark.slow
def test_events_jsonl_dash_streams_json_lines_on_stdout(
    tmp_path: Path, demo_models, small_input: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["run", str(small_input), "--out", str(out), "--demo", "--devices", "cpu:1"]
    assert main([*args, "--events-jsonl", "-"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert all(
        isinstance(e, dict) and {"v", "ts", "type", "worker", "job"} <= e.keys() for e in events
    )
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_done"
    assert events[-1]["status"] == "complete" and events[-1]["exit_code"] == 0
    assert {"model_load", "shard_done", "job_done", "gpu_memory", "heartbeat"} <= {
        e["type"] for e in events
    }
    # memory is read once the models are loaded, before the first shard, not by a timer's luck
    types = [e["type"] for e in events]
    loaded = max(i for i, e in enumerate(events) if e["type"] == "model_load")
    assert "gpu_memory" in types[loaded : types.index("shard_done")]
    on_disk = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert on_disk == events  # the same stream as the run directory's events.jsonl
    assert_plain_run_output(captured.err, out)  # the progress lines stay on stderr


@pytest.mark.slow
def test_a_run_prints_no_python_warning(tmp_path: Path, demo_models, small_input: Path) -> None:
    """A worker that holds a multiprocessing lock (tqdm makes one under torch.compile on a GPU)
    must release it when it exits: the run's resource tracker would otherwise print
    "There appear to be 1 leaked semaphore objects" once the run is over."""
    out = tmp_path / "run"
    env = cli_env(demo_models.root, faults={"named_semaphore": True})
    args = ["run", str(small_input), "--out", str(out), "--demo", "--devices", "cpu:2"]
    result = cli([*args, "--no-ui"], env)
    assert result.returncode == 0, result.stderr
    assert "run complete:" in result.stderr
    assert "leaked" not in result.stderr and "Warning" not in result.stderr, result.stderr


@pytest.mark.slow
def test_two_inputs_show_progress_and_eta_from_the_first_line(tmp_path: Path, demo_models) -> None:
    """Two inputs, the second read only once the first is prepared: from the first progress
    line on, every line has a percentage and a total (``~`` until both inputs are prepared),
    never ``?``; the ETA is never 00:00 while frames remain. With a cache clear after every
    shard, no event reads ``busy on ... #None``."""
    out = tmp_path / "run"
    env = cli_env(demo_models.root, faults={"sleep_per_batch_s": 0.05})
    args = ["run", str(SAMPLE_CONTIGS), str(SAMPLE_READS), "--out", str(out), "--demo"]
    args += ["--devices", "cpu:2", "--shard-size", "32", "--progress-interval", "0.2"]
    result = cli([*args, "--clear-cache-every", "1", "--no-ui"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    clock = re.compile(r"^\d\d:\d\d:\d\d ")
    progress = [i for i, line in enumerate(lines) if clock.match(line)]
    assert len(progress) >= 5
    assert all(PROGRESS.match(lines[i]) for i in progress), [lines[i] for i in progress]
    assert not [lines[i] for i in progress if "?" in lines[i]]
    prepared = max(i for i, line in enumerate(lines) if "prepared" in line and "frames in" in line)
    assert all("/~" in lines[i] for i in progress if i < prepared)  # estimates until then
    assert "/~" in lines[progress[0]]
    assert all("/~" not in lines[i] for i in progress if i > prepared)
    unfinished = [lines[i] for i in progress if " 100.0% " not in lines[i]]
    assert unfinished and not [line for line in unfinished if "ETA 00:00" in line]
    assert " 100.0% 345/345 frames" in lines[progress[-1]]
    events = read_events(out / "events.jsonl")
    started = next(e for e in events if e["type"] == "run_started")["ts"]
    first = lines[progress[0]][:8]  # the first progress line, within the run's first seconds
    assert first <= time.strftime("%H:%M:%S", time.localtime(started + 2))
    busy = [e for e in events if e["type"] == "worker_state" and e["state"] == "busy"]
    assert busy and all(e.get("shard") is not None for e in busy)
    assert sum(e["type"] == "cache_cleared" for e in events) >= 345 // 32
    assert not [e for e in events if "#None" in log_description(parse_event(e))]
