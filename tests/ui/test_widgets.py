"""Pilot tests: feed events, assert on what the widgets show; keys against a recording controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from textual.widget import Widget
from textual.widgets import Select, TabbedContent

from tests.helpers import SAMPLE_READS
from tests.ui import scenario
from tests.ui.helpers import (
    dashboard,
    model_loaded,
    notifications,
    screen_text,
    scripted_app,
    settle,
    wait_for_exit,
)
from tests.ui.helpers import ev as event
from virnucpro_tui.errors import RunDirError
from virnucpro_tui.pool.events import CacheCleared, Event, JobDone, JobPrepared, ShardDone
from virnucpro_tui.run.describe import fmt_bytes
from virnucpro_tui.run.view import RunView
from virnucpro_tui.ui import render
from virnucpro_tui.ui.app import READ_ONLY_NOTICE, VirnucproApp
from virnucpro_tui.ui.controllers import LiveRun
from virnucpro_tui.ui.launch import print_outcome, stop_for_signal
from virnucpro_tui.ui.messages import EventMessage, RunFinished
from virnucpro_tui.ui.render import DEMO_BANNER
from virnucpro_tui.ui.screens import AddInputScreen, CompletionScreen, ConfirmQuitScreen, HelpScreen
from virnucpro_tui.ui.widgets import (
    DemoBanner,
    EventLines,
    EventLog,
    HeaderBar,
    JobTable,
    OverallProgress,
    ResultsSummary,
    TopTable,
    TopTitle,
    WorkerPanel,
)

pytestmark = [pytest.mark.ui, pytest.mark.anyio]

T = scenario.T0


def ev(
    type_: str, ts: float = T, worker: int | None = None, job: str | None = None, **fields: Any
) -> Event:
    return event(type_, ts, worker, job, **fields)


def cpu_run_start(demo: bool = False) -> list[Event]:
    return [
        ev(
            "run_started",
            out="/tmp/run",
            inputs=["/data/a.fa"],
            jobs=["a"],
            devices=["cpu"],
            workers=[{"worker": 0, "kind": "cpu", "index": None, "uuid": None, "name": "CPU"}],
            demo=demo,
            notice="Demo models with random weights" if demo else None,
            resumed=False,
        ),
        ev(
            "worker_state",
            T + 1,
            0,
            state="starting",
            device="CPU worker 0",
            pid=4242,
            generation=0,
        ),
    ]


def cpu_memory() -> Event:
    """A CPU worker's memory reading: 300 MiB of its own, 20 of 32 GiB free."""
    return ev(
        "gpu_memory",
        T + 2,
        0,
        kind="cpu",
        allocated=300 * 2**20,
        reserved=300 * 2**20,
        peak=310 * 2**20,
        free=20 * 2**30,
        total=32 * 2**30,
    )


def panel_text(app: Any, worker: int) -> str:
    panel = app.query_one(f"#worker-{worker}", WorkerPanel)
    return f"{panel.title_text.plain}\n{panel.shown}"


async def test_worker_panels_show_devices_models_memory_speed_and_cache() -> None:
    events = scenario.mid_run_events()
    view = RunView()
    for e in events:
        view.apply(e)
    last_freed = [e.bytes_freed for e in events if isinstance(e, CacheCleared) and e.worker == 0][
        -1
    ]

    async with dashboard(events) as (pilot, app):
        w0, w1 = panel_text(app, 0), panel_text(app, 1)
        assert "worker 0 · GPU 0 · NVIDIA H200 · BUSY" in w0
        assert "DNABERT-S loaded 3.1 s + warm-up 14.2 s, 358.0 MiB" in w0
        assert "ESM-2 loaded 7.7 s + warm-up 23.9 s, 5.3 GiB" in w0
        assert "MLP loaded 0.0 s, 6.5 MiB" in w0
        assert "ESM-2 loaded 8.7 s + warm-up 23.9 s, 5.3 GiB" in w1
        for text in (
            "alloc 61.2 GiB",
            "reserved 72.0 GiB",
            "peak 80.1 GiB",
            "free 66.2 GiB of 139.8 GiB",
            "GPU util 97%",
            "64 °C",
            "612 W",
            "pid 48230",
        ):
            assert text in w0, text
        assert "alloc 64.2 GiB" in w1 and "GPU util 94%" in w1
        assert f"{view.workers[0].cache_clears} clears" in w0
        assert f"last freed {fmt_bytes(last_freed)}" in w0
        assert "0 OOM splits" in w0 and "1 OOM split" in w1
        assert "ESM-2 557 proteins/s" in w0  # 2048 proteins over a 3.68 s ESM stage
        assert f"#{view.workers[0].shard} · esm" in w0 and "1,180/2,048 frames" in w0
        assert f"{view.workers[0].shards_done:,} shards" in w0
        assert "█" in w0 and "▓" in w0  # allocated and reserved segments of the memory bar


async def test_model_load_states_cpu_worker_and_restarts() -> None:
    events = cpu_run_start() + [
        cpu_memory(),
        ev(
            "model_load",
            T + 3,
            0,
            "a",
            model="dnabert",
            phase="start",
            source="/m/d",
            dtype="float32",
        ),
        model_loaded(
            T + 3.5, 0, "dnabert", 0.5, 470_000, job="a", dtype="float32", source="/m/d", demo=True
        ),
        ev(
            "model_load",
            T + 3.5,
            0,
            "a",
            model="esm",
            phase="start",
            source="/m/e",
            dtype="float32",
        ),
    ]

    async with dashboard(events, size=(120, 40)) as (pilot, app):
        text = panel_text(app, 0)
        assert "worker 0 · CPU · STARTING" in text
        assert "util CPU" in text and "GPU util" not in text
        assert (
            "RSS 300.0 MiB" in text
            and "peak 310.0 MiB" in text
            and "machine free 20.0 GiB of 32.0 GiB" in text
        )
        assert "DNABERT-S loaded 0.5 s, 459.0 KiB" in text
        assert "ESM-2 loading…" in text and "MLP not loaded" in text
        app.apply_events(
            [
                ev(
                    "model_load",
                    T + 4,
                    0,
                    "a",
                    model="esm",
                    phase="error",
                    message="bad checkpoint",
                ),
                ev("error", T + 4, 0, "a", message="RuntimeError: bad checkpoint", fatal=True),
                ev(
                    "worker_state",
                    T + 5,
                    0,
                    state="crashed",
                    pid=4242,
                    reason="model load failed",
                ),
                ev(
                    "worker_state",
                    T + 6,
                    0,
                    state="restarting",
                    generation=1,
                    reason="exit code 9",
                ),
            ]
        )
        await settle(pilot, app)
        text = panel_text(app, 0)
        assert "RESTARTING" in text and "restarts 1" in text
        assert "problem restarting: exit code 9" in " ".join(text.split())
        assert "ESM-2 not loaded" in text  # a respawned worker loads again


async def test_job_table_shows_each_input_with_status_and_progress() -> None:
    async with dashboard(scenario.mid_run_events()) as (pilot, app):
        table = app.query_one(JobTable)
        gut = table.row_text("gut_contigs")
        assert gut[:4] == [
            "gut_contigs",
            "running",
            "118,437",
            f"{app.view.jobs['gut_contigs'].frames_done:,}/3,288,604",
        ]
        assert "47.0%" in gut[4]
        assert table.row_text("phage_reads")[:2] == ["phage_reads", "queued"]
        app.apply_events(
            [
                ev(
                    "job_added",
                    scenario.NOW,
                    job="more_reads",
                    input="/data/more.fa",
                    records=12,
                    chunks_total=20,
                )
            ]
        )
        await settle(pilot, app)
        assert table.row_text("more_reads")[:3] == ["more_reads", "queued (added)", "12"]
        app.apply_events(scenario.finished_events()[len(scenario.mid_run_events()) :])
        await settle(pilot, app)
        done = table.row_text("gut_contigs")
        assert done[1] == "done" and done[3] == "3,288,604/3,288,604" and "100.0%" in done[4]
        assert done[5] == "21,377/118,437" and done[6] == "gut_contigs/"
        assert table.row_text("more_reads")[1] == "stopped (added)"  # the run ended before it ran


async def test_results_counts_histogram_and_top_scores() -> None:
    events = scenario.mid_run_events()
    done = [e for e in events if isinstance(e, ShardDone)]
    virus = sum(e.virus_frames for e in done)
    others = sum(e.others_frames for e in done)
    bins = [sum(e.histogram[i] for e in done) for i in range(20)]

    app = scripted_app(events)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await settle(pilot, app)
        summary = app.query_one("#results-summary", ResultsSummary).shown
        assert f"{virus + others:,} scored" in summary
        assert f"virus {virus:,} ({100 * virus / (virus + others):.1f}%)" in summary
        assert f"others {others:,}" in summary
        assert "counted when a job is done" in summary
        chart = summary.split("frames by P(virus)")[1].splitlines()[1:]
        assert chart[0].strip().startswith(f"{max(bins):,} ┤")
        assert (
            chart[9].strip().startswith("0 ┤")
            and "0.5" in chart[10]
            and "others ◀ 0.5 ▶ virus" in chart[11]
        )
        top_row = chart[0].split("┤")[1]
        cell = len(top_row) // 20
        assert top_row[bins.index(max(bins)) * cell] == "█"  # the tallest bin reaches the top row
        top = app.query_one("#top", TopTable)
        assert str(app.query_one("#top-title").render()).startswith("Top-scoring frames so far")
        assert float(top.row_text(0)[2]) == max(s for e in done for _, s in e.top)
        app.apply_events(scenario.finished_events()[len(events) :])
        await settle(pilot, app)
        summary = app.query_one("#results-summary", ResultsSummary).shown
        assert "130,441 sequences" in summary and "32,258 called virus (24.7%)" in summary
        assert str(app.query_one("#top-title").render()).startswith("Top input sequences")
        assert top.row_text(0)[1:] == ["contig_00001", "virus", "0.9998"]
        headers = " ".join(top.shown.splitlines()[0].split())
        assert "Call (virus: ≥ half its chunks viral)" in headers
        assert "max P(virus) (its best frame)" in headers


async def test_results_and_summary_say_what_was_computed_once_and_where_the_features_are() -> None:
    """Frames computed once and the saved features (path and size) show in the Results panel
    and, labelled, on the completion summary."""
    events: list[Event] = []
    for e in scenario.finished_events():
        if isinstance(e, JobPrepared) and e.job == "phage_reads":
            e = msgspec.structs.replace(e, duplicate_frames=4_000)
        if isinstance(e, JobDone) and e.job == "phage_reads":
            e = msgspec.structs.replace(
                e,
                duplicate_frames=4_000,
                features_path="/r/phage_reads/features.pt",
                features_bytes=5 * 2**20,
            )
        events.append(e)

    app = scripted_app(events)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await settle(pilot, app)
        summary = " ".join(app.query_one("#results-summary", ResultsSummary).shown.split())
        assert "computed once: 4,000 identical frames reuse an earlier result" in summary
        assert "saved /r/phage_reads/features.pt (5.0 MiB)" in summary
        shown = " ".join(str(render.completion_text(app.view, None)).split())
        assert "computed once: 56,512 distinct frames; 4,000 identical frames" in shown
        assert "features: /r/phage_reads/features.pt (5.0 MiB)" in shown
        assert "prediction_results.txt: /scratch" not in shown  # a file: its path alone


async def test_demo_banner_is_always_on_screen_for_a_demo_run() -> None:
    app = scripted_app([], demo=True)  # known from the config before the first event
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert DEMO_BANNER in screen_text(app)
        await pilot.press("3")
        await settle(pilot, app)
        assert DEMO_BANNER in screen_text(app)  # whatever the tab
    async with dashboard(cpu_run_start(demo=True), size=(80, 24)) as (pilot, app):
        assert app.query_one(DemoBanner).display and DEMO_BANNER in screen_text(app)
    async with dashboard(cpu_run_start(demo=False), size=(80, 24)) as (pilot, app):
        assert not app.query_one(DemoBanner).display and DEMO_BANNER not in screen_text(app)


async def test_completion_view_lists_totals_and_output_paths() -> None:
    async with dashboard(scenario.finished_events()) as (pilot, app):
        assert isinstance(app.screen, CompletionScreen)
        shown = app.screen.shown
        assert shown.startswith("run complete: 3,349,116 frames in 35:21")
        for job in ("gut_contigs", "phage_reads"):
            for name in (
                "prediction_results.txt",
                "prediction_results_highestscore.csv",
                "sequence_summary.tsv",
            ):
                assert f"{scenario.OUT}/{job}/{name}" in shown
        assert "21,377 sequences called virus" in shown
        assert "Run complete — exit 0" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert (
            not isinstance(app.screen, CompletionScreen)
            and "COMPLETE" in app.query_one(HeaderBar).shown
        )
        await pilot.press("s")
        await settle(pilot, app)
        assert isinstance(app.screen, CompletionScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_event_log_filters_by_worker_and_kind() -> None:
    events = scenario.mid_run_events() + [
        ev("warning", scenario.NOW, message="recomputing: corrupt shard 12", job="gut_contigs"),
        ev(
            "error",
            scenario.NOW,
            1,
            "gut_contigs",
            message="RuntimeError: boom",
            shard=3,
            fatal=False,
        ),
    ]

    app = scripted_app(events)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("l")
        await settle(pilot, app)
        assert app.query_one(TabbedContent).active == "log"
        assert isinstance(app.focused, EventLines)
        log = app.query_one(EventLog)
        everything = log.shown_lines()
        assert any(" w0 " in line for line in everything) and any(
            " w1 " in line for line in everything
        )
        app.query_one("#log-worker", Select).value = 1
        await settle(pilot, app)
        lines = log.shown_lines()
        assert lines and all(" w1 " in line for line in lines)
        assert any("error" in line and "RuntimeError: boom" in line for line in lines)
        app.query_one("#log-worker", Select).value = "all"
        app.query_one("#log-group", Select).value = "problems"
        await settle(pilot, app)
        lines = log.shown_lines()
        assert len(lines) == 3  # the OOM split, the warning and the error
        assert any("corrupt shard 12" in line for line in lines) and any(
            "boom" in line for line in lines
        )
        app.query_one("#log-group", Select).value = "models"
        await settle(pilot, app)
        assert len(log.shown_lines()) == 20 and all(  # 2 workers: 4 + 4 + 2 phases
            "model_load" in line for line in log.shown_lines()
        )


async def test_keys_pause_clear_add_help_and_quit_with_confirmation(tmp_path: Path) -> None:
    app = scripted_app(scenario.mid_run_events())
    calls = app.controller.calls
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("p")
        assert calls[-1] == ("pause", True)
        app.apply_events([ev("run_paused", scenario.NOW)])
        await settle(pilot, app)
        assert (
            "PAUSED" in app.query_one(HeaderBar).shown
            and "ETA paused" in app.query_one(HeaderBar).shown
        )
        await pilot.press("p")
        assert calls[-1] == ("pause", False)
        await pilot.press("c")
        assert calls[-1] == ("clear", None)
        await pilot.press("a")
        assert isinstance(app.screen, AddInputScreen)
        await pilot.press(*"nope.fa", "enter")
        assert isinstance(app.screen, AddInputScreen)
        assert "nope.fa: no such file" in str(app.screen.query_one("#add-error").render())
        app.screen.query_one("#add-path").value = str(SAMPLE_READS)
        await pilot.press("enter")
        await settle(pilot, app)
        assert calls[-1] == ("add", SAMPLE_READS) and not isinstance(app.screen, AddInputScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "q")
        assert isinstance(app.screen, ConfirmQuitScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmQuitScreen) and ("stop", False) not in calls
        await pilot.press("q", "y")
        await settle(pilot, app)
        assert calls[-1] == ("stop", False) and "STOPPING" in app.query_one(HeaderBar).shown
        await pilot.press("q")
        await settle(pilot, app)
        assert calls[-1] == ("stop", True) and "ABANDONING" in app.query_one(HeaderBar).shown
        app.apply_events(
            [
                ev(
                    "run_done",
                    scenario.NOW + 5,
                    status="interrupted",
                    exit_code=130,
                    resumable=True,
                )
            ]
        )
        await pilot.pause()
    assert app.return_code == 130  # it exits by itself once the run has stopped


async def test_ctrl_c_stops_without_asking_and_twice_abandons() -> None:
    async with dashboard(scenario.mid_run_events(), size=(100, 30)) as (pilot, app):
        await pilot.press("ctrl+c")
        assert app.controller.calls == [("stop", False)] and not isinstance(
            app.screen, ConfirmQuitScreen
        )
        await pilot.press("ctrl+c")
        assert app.controller.calls == [("stop", False), ("stop", True)]


async def test_read_only_dashboard_refuses_steering_with_a_notice() -> None:
    async with dashboard(scenario.mid_run_events(), read_only=True, size=(100, 30)) as (pilot, app):
        for key in ("p", "c", "a"):
            await pilot.press(key)
        assert app.controller.calls == [] and not isinstance(app.screen, AddInputScreen)
        assert notifications(app).count(READ_ONLY_NOTICE) == 3
        assert "attached, read-only" in app.query_one(HeaderBar).shown
        await pilot.press("q")  # nothing to stop: leaves at once
    assert app.return_code == 0


async def test_a_run_that_never_starts_exits_with_its_code() -> None:
    app = scripted_app([])
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(RunFinished(2, "x.fa: not FASTA"))
        await pilot.pause()
    assert app.return_code == 2


async def test_telemetry_of_one_worker_coalesces() -> None:
    def msg(type_: str, worker: int, **fields: Any) -> EventMessage:
        return EventMessage(ev(type_, T, worker, **fields))

    assert msg("heartbeat", 0).can_replace(msg("heartbeat", 0))
    assert msg("gpu_memory", 3).can_replace(msg("gpu_memory", 3))
    assert not msg("heartbeat", 0).can_replace(msg("heartbeat", 1))
    assert not msg("heartbeat", 0).can_replace(msg("gpu_memory", 0))
    assert not msg("shard_done", 0).can_replace(msg("shard_done", 0))
    closing = msg("progress", 0, stage="dnabert", stage_done=8, stage_total=8, seconds=1.0)
    assert not closing.can_replace(msg("progress", 0, stage="esm", stage_done=1, stage_total=8))

    async with dashboard(cpu_run_start(), size=(80, 24)) as (pilot, app):
        seen = app.view.events_seen
        for i in range(500):
            app.post_message(
                msg(
                    "progress",
                    0,
                    job="a",
                    shard=0,
                    stage="esm",
                    frames_done=i,
                    frames_total=500,
                    stage_done=i,
                    stage_total=500,
                    seconds=i / 100,
                )
            )
        await settle(pilot, app)
        assert app.view.workers[0].shard_done == 499  # the newest reading wins
        assert app.view.events_seen - seen < 500  # and most were never handled


async def test_a_signal_stops_like_ctrl_c_and_leaves_once_the_run_has() -> None:
    async with dashboard(scenario.mid_run_events(), size=(80, 24)) as (pilot, app):
        stop_for_signal(app)  # what SIGTERM / SIGHUP schedule on the app's loop
        assert app.controller.calls == [("stop", False)] and app.exit_on_done
        app.apply_events([ev("run_done", scenario.NOW, status="interrupted", exit_code=130)])
        await pilot.pause()
    assert app.return_code == 130


class RefusedRun:
    def __init__(self, _sink: Any) -> None:
        pass

    def execute(self) -> int:
        raise RunDirError("/data/run: in use by another virnucpro-tui run (pid 7 on gpu01)")

    def request_stop(self, abandon: bool = False) -> None:
        raise AssertionError("nothing to stop")


async def test_a_run_refused_before_it_starts_ends_with_one_line(capsys) -> None:
    controller = LiveRun(RefusedRun)
    app = VirnucproApp(controller, toasts=False)
    async with app.run_test(size=(80, 24)):
        await wait_for_exit(app, 30)  # the refusal comes from the run's thread: no fixed wait
    assert app.return_code == 2 and controller.exit_code == 2
    print_outcome(app.view, controller.error)
    assert capsys.readouterr().err == (
        "virnucpro-tui: error: /data/run: in use by another virnucpro-tui run (pid 7 on gpu01)\n"
    )


async def test_warnings_errors_and_added_inputs_pop_up_while_live() -> None:
    async with dashboard(cpu_run_start(), toasts=True, size=(100, 30)) as (pilot, app):
        app.apply_events(
            [
                ev("warning", T + 9, message="not added: /data/x.fa: not a FASTA file"),
                ev("job_added", T + 9, job="b", input="/data/b.fa", records=3, chunks_total=3),
                ev(
                    "error",
                    T + 9,
                    0,
                    "a",
                    message="RuntimeError: shard 3 failed",
                    shard=3,
                    fatal=False,
                ),
            ]
        )
        await settle(pilot, app)
        shown = notifications(app)
        assert "not added: /data/x.fa: not a FASTA file" in shown
        assert "/data/b.fa added as job b" in shown and "RuntimeError: shard 3 failed" in shown
        app.apply_events([ev("warning", T + 10, message="replayed")], live=False)
        assert "replayed" not in notifications(app)  # history (attach backlog) does not pop up


# -- issue 12: what the dashboard shows is true, and explained -------------------------------------
def footer(app: VirnucproApp) -> str:
    return screen_text(app).rstrip("\n").split("\n")[-1]


async def test_the_footer_offers_only_the_keys_that_work() -> None:
    async with dashboard(scenario.mid_run_events(), read_only=True, size=(120, 40)) as (pilot, app):
        keys = footer(app)
        assert "q Quit" in keys and "l Log" in keys and "? Help" in keys
        for gone in ("Pause", "Clear caches", "Add input", "Summary"):
            assert gone not in keys, keys
        await pilot.press("p")  # pressed anyway: says why it does nothing
        assert READ_ONLY_NOTICE in notifications(app) and app.controller.calls == []
    async with dashboard(scenario.mid_run_events(), size=(120, 40)) as (pilot, app):
        keys = footer(app)
        assert "p Pause/resume" in keys and "c Clear caches" in keys and "a Add input" in keys
        assert "Summary" not in keys  # nothing to summarise yet
    async with dashboard(scenario.finished_events(), size=(120, 40)) as (pilot, app):
        await pilot.press("escape")  # from the completion view to the dashboard
        await settle(pilot, app)
        keys = footer(app)
        assert "s Summary" in keys and "q Quit" in keys
        assert "Pause" not in keys and "Add input" not in keys  # the run is over


async def test_the_help_legend_shows_the_glyphs_the_bars_are_drawn_with() -> None:
    drawn: set[str] = set()
    for events in (scenario.mid_run_events(), [*cpu_run_start(), cpu_memory()]):
        async with dashboard(events, size=(120, 60)) as (pilot, app):  # the full panels fit
            memory = [
                line for line in panel_text(app, 0).splitlines() if line.startswith("memory")
            ][0]
            drawn |= set(memory.split(" · ")[0].removeprefix("memory").strip())
            progress = app.query_one(OverallProgress).shown
    async with dashboard(scenario.mid_run_events(), size=(120, 50)) as (pilot, app):
        await pilot.press("question_mark")
        await settle(pilot, app)
        shown = str(app.screen.query_one("#help-text").render())
    assert {"█", "▓", "▒", "░"} <= drawn  # GPU: allocated, reserved; CPU: other processes
    for glyph in drawn | set(progress.split(" ")[0]):
        assert f"{glyph} " in shown, glyph  # each glyph drawn is explained
    assert "▒ other processes" in shown and "▓ reserved (cache)" in shown
    # the call rule (the help wraps its paragraphs to fit 80 columns)
    assert "at least half of its chunks with frames are viral" in " ".join(shown.split())


async def test_the_warm_up_shows_as_its_own_phase_with_its_time() -> None:
    gpu = [{"worker": 0, "kind": "cuda", "index": 0, "uuid": "GPU-1", "name": "NVIDIA H200"}]
    events = [
        ev("run_started", T, out="/r", jobs=["a"], devices=["cuda:0"], workers=gpu),
        ev("worker_state", T, 0, state="loading", device="cuda:0", pid=7),
        ev("model_load", T + 1, 0, model="dnabert", phase="start", source="/m/d"),
        ev("model_load", T + 4, 0, model="dnabert", phase="warmup_start", source="", compile=True),
    ]

    now = {"t": T + 46}
    async with dashboard(events, clock=lambda: now["t"], size=(120, 40)) as (pilot, app):
        panel = panel_text(app, 0)
        assert "DNABERT-S compiling… 00:42" in panel and "ESM-2 not loaded" in panel
        now["t"] = T + 50
        await settle(pilot, app)
        assert "DNABERT-S compiling… 00:46" in panel_text(app, 0)  # the time goes on
        app.apply_events(
            [
                ev(
                    "model_load",
                    T + 51,
                    0,
                    model="dnabert",
                    phase="warmup_done",
                    source="",
                    seconds=47.0,
                ),
                model_loaded(
                    T + 51, 0, "dnabert", 3.0, 358 * 2**20, source="/m/d", compile_seconds=47.0
                ),
                ev("model_load", T + 51, 0, model="esm", phase="start", source="/m/e"),
            ]
        )
        now["t"] = T + 63
        await settle(pilot, app)
        panel = panel_text(app, 0)
        assert "DNABERT-S loaded 3.0 s + warm-up 47.0 s, 358.0 MiB" in panel
        assert "ESM-2 loading… 00:12" in panel
        beside = {"model": "esm", "source": "/m/e"}
        app.apply_events(
            [
                ev("model_load", T + 64, 0, phase="compile_beside_start", **beside),
                model_loaded(T + 64, 0, "esm", 13.0, 5 * 2**30, source="/m/e", compile_seconds=0),
            ]
        )
        await settle(pilot, app)
        panel = panel_text(app, 0)
        assert "ESM-2 loaded 13.0 s, 5.0 GiB" in panel
        assert "ESM-2 uncompiled: compiling beside" in panel
        app.apply_events(
            [ev("model_load", T + 80, 0, phase="compile_beside_done", seconds=16.2, **beside)]
        )
        await settle(pilot, app)
        assert "compiling beside" not in panel_text(app, 0)


async def test_a_pause_says_how_many_shards_are_still_finishing() -> None:
    async with dashboard(scenario.mid_run_events(), toasts=True, size=(120, 40)) as (pilot, app):
        app.apply_events([ev("run_paused", scenario.NOW, shards_running=2)])
        await settle(pilot, app)
        header = " ".join(app.query_one(HeaderBar).shown.split())
        assert "PAUSED" in header and "ETA paused" in header
        assert "no new shard starts; 2 shards still finishing (p resumes)" in header
        assert "Paused: no new shard starts; 2 shards still finishing. p resumes." in (
            notifications(app)
        )
        done = [e for e in scenario.mid_run_events() if isinstance(e, ShardDone)][-1]
        app.apply_events([done])
        await settle(pilot, app)
        assert "1 shard still finishing" in app.query_one(HeaderBar).shown
        app.apply_events([done, ev("run_resumed", scenario.NOW + 1)])
        await settle(pilot, app)
        assert "PAUSED" not in app.query_one(HeaderBar).shown
        assert "Resumed: shards start again." in notifications(app)


async def test_worker_panels_repaint_only_when_their_text_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tick that changes nothing on a panel does not render it again (eight panels re-rendered
    four times a second were most of the dashboard's CPU time:
    docs/benchmarks.md#orchestrator-capacity-on-one-core-issue-16); a change does.

    Renders are counted on the app's own panels: swapping them for other panels raced the app's
    4 Hz tick, which mounts a panel for every worker it finds without one."""
    events = scenario.mid_run_events(workers=3)
    renders: dict[int, int] = {}
    render_lines = WorkerPanel.render_lines

    def counting(panel: WorkerPanel, crop: Any) -> Any:
        renders[panel.worker] = renders.get(panel.worker, 0) + 1
        return render_lines(panel, crop)

    monkeypatch.setattr(WorkerPanel, "render_lines", counting)
    app = scripted_app(events)
    async with app.run_test(size=(160, 60)) as pilot:  # tall enough for 3 full panels
        await settle(pilot, app)
        assert set(renders) == {0, 1, 2}
        before = dict(renders)
        for _ in range(3):  # what the app's 4 Hz timer does (settle renders the whole screen)
            app.refresh_dashboard()
            await pilot.pause()
        assert renders == before  # nothing changed: nothing rendered
        shards = app.view.workers[1].shards_done
        done = next(e for e in reversed(events) if isinstance(e, ShardDone) and e.worker == 1)
        app.apply_events([msgspec.structs.replace(done, ts=done.ts + 1, shard=99_999)])
        await settle(pilot, app)
        assert renders[1] > before[1] and f"{shards + 1:,} shards" in panel_text(app, 1)


async def test_a_tick_that_changes_nothing_asks_for_no_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The top tables' titles are set only when they change: ``Static.update`` lays the whole
    screen out again, even with the same text, and both were set at every 4 Hz tick
    (docs/benchmarks.md#orchestrator-capacity-on-one-core-issue-16)."""
    events = scenario.mid_run_events(workers=3)
    layouts: list[str] = []
    original = Widget.refresh

    def refresh(widget: Widget, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("layout"):
            layouts.append(type(widget).__name__)
        return original(widget, *args, **kwargs)

    async with dashboard(events) as (pilot, app):
        monkeypatch.setattr(Widget, "refresh", refresh)
        for _ in range(3):
            app.refresh_dashboard()
            await pilot.pause()
        monkeypatch.undo()
        assert layouts == []
        for title, table in (("#top-title", "#top"), ("#side-top-title", "#side-top")):
            shown = app.query_one(title, TopTitle).shown
            assert shown and shown == app.query_one(table, TopTable).title


@pytest.mark.parametrize("size", [(80, 40), (200, 50)])
async def test_a_model_compiling_beside_says_so_at_any_width(size: tuple[int, int]) -> None:
    gpu = [{"worker": 0, "kind": "cuda", "index": 0, "uuid": "GPU-1", "name": "NVIDIA H100"}]
    beside = {"source": "/m/e", "phase": "compile_beside_start"}
    events = [
        ev("run_started", T, out="/r", jobs=["a"], devices=["cuda:0"], workers=gpu),
        ev("worker_state", T, 0, state="loading", device="cuda:0", pid=7),
        ev("model_load", T + 1, 0, model="dnabert", **beside),
        model_loaded(T + 1, 0, "dnabert", 0.9, 358 * 2**20, source="/m/d", compile_seconds=0),
        ev("model_load", T + 2, 0, model="esm", **beside),
        model_loaded(T + 2, 0, "esm", 1.5, 5 * 2**30, source="/m/e", compile_seconds=0),
    ]
    async with dashboard(events, clock=lambda: T + 5, size=size) as (pilot, app):
        panel = " ".join(panel_text(app, 0).split())
        for model, loaded in (("DNABERT-S", "0.9 s, 358.0 MiB"), ("ESM-2", "1.5 s, 5.0 GiB")):
            assert f"{model} loaded {loaded}" in panel  # no warm-up: it did not wait for one
            assert f"{model} uncompiled: compiling beside" in panel
        assert "…" not in panel  # nothing cut short
