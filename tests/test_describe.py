"""RunView folding and the wording of run/describe.py, as pure functions (no app, no process):
what the headless lines, attach and the dashboard's log say about each event."""

from __future__ import annotations

import msgspec

from tests.ui import scenario
from tests.ui.helpers import ev, model_loaded
from virnucpro_tui.pool.events import JobDone, RunStatus, WorkerState
from virnucpro_tui.run.describe import (
    eta_text,
    event_line,
    fmt_bytes,
    fmt_duration,
    log_description,
    notable_text,
    progress_line,
    result_counts,
    run_state,
    summary_lines,
)
from virnucpro_tui.run.view import RunView, Totals
from virnucpro_tui.ui.render.results import results_text

T = 1_000.0


def fold(*events: object) -> RunView:
    view = RunView()
    for e in events:
        view.apply(e)  # type: ignore[arg-type]
    return view


def test_formats() -> None:
    assert (fmt_duration(None), fmt_duration(59.6), fmt_duration(3_725)) == (
        "--:--",
        "01:00",
        "1:02:05",
    )
    assert (fmt_bytes(None), fmt_bytes(512), fmt_bytes(3 * 2**30)) == ("-", "512 B", "3.0 GiB")


def test_worker_events_name_the_worker_in_plain_lines_only() -> None:
    load = model_loaded(T, 0, "esm", 38.4, 5 * 2**30, job="a", source="/m", dtype="bfloat16")
    assert notable_text(load) == "esm loaded in 38.4 s (5.0 GiB, bfloat16)"
    assert event_line(load) == "worker 0: esm loaded in 38.4 s (5.0 GiB, bfloat16)"
    assert log_description(load) == "esm loaded in 38.4 s (5.0 GiB, bfloat16)"
    crash = ev("worker_state", T, 1, state="crashed", reason="exited with signal SIGKILL")
    assert event_line(crash) == "worker 1: crashed: exited with signal SIGKILL"
    requeued = ev("shard_requeued", T, None, "a", shard=3, attempt=1, reason="worker 1 died")
    assert event_line(requeued) == "shard a/3 requeued (attempt 1): worker 1 died"


def test_quiet_events_are_described_in_the_log_only() -> None:
    busy = ev("worker_state", T, 0, "a", state="busy", shard=7, frames=2048)
    assert event_line(busy) is None
    assert log_description(busy) == "busy on a #7 (2,048 frames)"
    start = ev("worker_state", T, 0, state="starting", pid=42)
    assert log_description(start) == "starting (pid 42)"
    cleared = ev(
        "cache_cleared",
        T,
        0,
        reason="periodic",
        bytes_freed=2**30,
        reserved_before=3 * 2**30,
        reserved_after=2 * 2**30,
    )
    assert event_line(cleared) is None  # only a manual clear is a line of its own
    assert log_description(cleared) == (
        "cache cleared (periodic): 1.0 GiB freed, reserved 3.0 GiB -> 2.0 GiB"
    )
    done = ev("run_done", T, status="interrupted", exit_code=130, seconds=75.0)
    assert log_description(done) == "run interrupted (exit 130) after 01:15"


def test_the_run_start_is_two_lines_or_one_log_entry() -> None:
    start = ev("run_started", T, out="/r", devices=["cpu"], demo=True, notice="random weights")
    assert event_line(start) == "virnucpro-tui run -> /r on cpu\nDEMO: random weights"
    assert log_description(start) == "virnucpro-tui run -> /r on cpu · DEMO: random weights"


def test_fatal_run_errors_are_left_to_the_last_line() -> None:
    assert event_line(ev("error", T, message="No space left", fatal=False, disk_full=True)) is None
    assert event_line(ev("error", T, message="cannot go on", fatal=True)) is None
    assert event_line(ev("error", T, 2, message="bad shard", fatal=False)) == (
        "worker 2: error: bad shard"
    )


def test_the_view_folds_a_restart() -> None:
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"]),
        ev("model_load", T + 1, 0, model="esm", phase="done", source="/m", seconds=1.0),
        ev("worker_state", T + 2, 0, state="busy", pid=5, shard=0, frames=8, job="a"),
        ev("progress", T + 3, 0, "a", shard=0, stage="dnabert", frames_done=4, frames_total=8),
        ev("worker_state", T + 4, 0, state="crashed", reason="exited with code 9"),
        ev("worker_state", T + 5, 0, state="restarting", generation=1, reason="exited"),
    )
    w = view.workers[0]
    assert w.state == WorkerState.RESTARTING and w.restarts == 1 and w.generation == 1
    assert w.pid == 5 and w.last_error == "restarting: exited"
    assert w.models["esm"].state == "not loaded" and w.shard is None
    assert view.frames_in_flight == 0 and view.status == RunStatus.RUNNING


def test_the_view_counts_results_and_skips() -> None:
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"]),
        ev("shard_skipped", T + 1, job="a", shard=0, frames=5),
        ev(
            "shard_done",
            T + 2,
            0,
            "a",
            shard=1,
            frames=4,
            seconds=2.0,
            virus_frames=3,
            others_frames=1,
            histogram=[0] * 19 + [3],
            top=[["f1", 0.9]],
        ),
        ev("run_paused", T + 3),
    )
    assert view.jobs["a"].frames_done == 9 and view.frames_done == 9
    assert (view.virus_frames, view.others_frames, view.histogram[-1]) == (3, 1, 3)
    assert view.top_frames == [("f1", 0.9)] and view.paused
    assert list(view.workers[0].throughput) == [2.0]
    assert [e.type for e in view.log] == [
        "run_started",
        "shard_skipped",
        "shard_done",
        "run_paused",
    ]


def test_progress_and_summary_of_a_finished_run() -> None:
    view = fold(*scenario.finished_events())
    assert view.status.finished and view.status == RunStatus.COMPLETE
    line = progress_line(view, view.finished)
    assert " 100.0% 3,349,116/3,349,116 frames | " in line and "jobs 2/2" in line
    lines = summary_lines(view)
    assert lines[0] == "run complete: 3,349,116 frames in 35:21"
    assert f"    prediction_results.txt: {scenario.OUT}/gut_contigs/prediction_results.txt" in lines
    assert not [x for x in lines if x.startswith("resumable")]


def test_a_finished_inputs_counts_take_the_number_their_noun_needs() -> None:
    """A six-read FASTQ gave "1 sequences called virus" in the summary; one of each is singular,
    and the summary's line for the input reads the same."""
    events = scenario.finished_events()
    done = next(e for e in events if isinstance(e, JobDone))
    one = msgspec.structs.replace(
        done, sequences=1, chunks=1, chunks_without_frames=0, frames=1, virus_frames=1,
        viral_sequences=1,
    )  # fmt: skip
    assert result_counts(one) == (
        "1 sequence, 1 chunk (0 without a stop-free frame), 1 frame, 1 virus frame, "
        "1 sequence called virus"
    )
    many = msgspec.structs.replace(one, sequences=6, chunks=8, chunks_without_frames=7,
                                   frames=3, virus_frames=2)  # fmt: skip
    assert result_counts(many) == (
        "6 sequences, 8 chunks (7 without a stop-free frame), 3 frames, 2 virus frames, "
        "1 sequence called virus"
    )
    view = fold(*(one if e is done else e for e in events))
    assert f"  {done.job}: {result_counts(one)}" in summary_lines(view)
    only = fold(
        *(one if e is done else e for e in events if not isinstance(e, JobDone) or e is done)
    )
    shown = " ".join(results_text(only, 120).plain.split())
    assert "seqs 1 sequence · 1 called virus (100.0%) · 1 chunk · 0 without" in shown, shown


def test_the_summary_names_the_runs_one_report_once_and_first() -> None:
    """Every job's outputs name the run's report.html (the hook returns it first): the summary
    lists it once, right under the run's line, and each job's own report files under the job."""
    report = f"{scenario.OUT}/report.html"

    def with_report(e: object) -> object:
        if not isinstance(e, JobDone):
            return e
        files = {"report.html": report, "viral_sequences.fa": f"{e.out_dir}/viral_sequences.fa"}
        return msgspec.structs.replace(e, outputs={**files, **e.outputs})

    lines = summary_lines(fold(*map(with_report, scenario.finished_events())))
    assert lines[1] == f"  report: {report}"
    assert sum(report in x for x in lines) == 1
    assert f"    viral_sequences.fa: {scenario.OUT}/phage_reads/viral_sequences.fa" in lines


# -- issue 12: the views never show a false state -------------------------------------------------
def started(ts: float = T, resumed: bool = False, pid: int = 100, **fields: object) -> object:
    slots = [{"worker": 0, "kind": "cpu", "index": None, "uuid": None, "name": "CPU"}]
    return ev(
        "run_started",
        ts,
        out="/r",
        jobs=["a"],
        devices=["cpu"],
        workers=slots,
        resumed=resumed,
        pid=pid,
        **fields,
    )


def job_started(ts: float, out_dir: str, records: int, chunks: int, **fields: object) -> object:
    return ev(
        "job_started",
        ts,
        job="a",
        input="/a.fa",
        out_dir=out_dir,
        records=records,
        chunks_total=chunks,
        **fields,
    )


def prepared(
    ts: float, chunks: int, total: int, frames: int, shards: int | None, **fields: object
) -> object:
    """Job a's ``job_prepared``: ``chunks`` of ``total`` chunks read (done when all are)."""
    return ev(
        "job_prepared",
        ts,
        job="a",
        chunks_prepared=chunks,
        chunks_total=total,
        frames_prepared=frames,
        done=chunks == total,
        shards_total=shards,
        **fields,
    )


def stage_end(ts: float, stage: str, frames_done: int, seconds: float, total: int) -> object:
    """The ``progress`` event closing ``stage`` of shard a/0 (``total`` frames) on worker 0."""
    every = {"frames_total": total, "stage_done": total, "stage_total": total}
    return ev(
        "progress",
        ts,
        0,
        "a",
        shard=0,
        stage=stage,
        frames_done=frames_done,
        seconds=seconds,
        **every,
    )


def shard_done(
    ts: float, shard: int, frames: int = 10, worker: int = 0, **fields: object
) -> object:
    return ev(
        "shard_done",
        ts,
        worker,
        "a",
        shard=shard,
        frames=frames,
        seconds=1.0,
        virus_frames=frames // 2,
        others_frames=frames - frames // 2,
        histogram=[frames] + [0] * 19,
        **fields,
    )


def test_a_busy_state_without_a_shard_says_only_busy() -> None:
    """After a periodic cache clear a worker restored "busy" without a shard: the log said
    ``busy on big60_contigs #None (0 frames)``."""
    restored = ev("worker_state", T, 0, "big60_contigs", state="busy")
    assert log_description(restored) == "busy"
    assert "None" not in log_description(restored)


def test_plurals() -> None:
    one = prepared(T, 3, 3, frames=7, shards=1)
    assert event_line(one) == "job a: prepared 7 frames in 1 shard"
    paused = ev("run_paused", T, shards_running=1)
    assert event_line(paused) == "paused: no new shard starts; 1 shard already running finish"


def test_a_resumed_run_is_a_new_segment_and_counts_each_shard_once() -> None:
    view = fold(
        started(T, pid=100),
        ev("worker_state", T + 1, 0, state="busy", pid=4242, job="a", shard=0, frames=10),
        shard_done(T + 2, 0),
        shard_done(T + 3, 1),
        ev("progress", T + 3.5, 0, "a", shard=2, stage="esm", frames_done=5, frames_total=10),
        # kill -9: no run_done; the same command resumes
        started(T + 100, resumed=True, pid=200),
        ev("worker_state", T + 101, 0, state="starting", pid=5151),
        ev("shard_skipped", T + 102, job="a", shard=0, frames=10),
        ev("shard_skipped", T + 102, job="a", shard=1, frames=10),
        prepared(T + 102, 4, 4, frames=30, shards=3),
    )
    assert view.segments == 2 and view.resumed and view.pid == 200
    assert view.frames_done == 20 and view.totals() == Totals(20, 30, True)  # not 40 of 30
    assert view.frames_in_flight == 0  # the dead segment's shard in progress is gone
    assert view.workers[0].pid == 5151 and view.workers[0].shards_done == 0  # no old pid
    assert view.virus_frames == 10  # the results scored before the resume stay, once
    assert view.elapsed(T + 110) == 10.0  # this segment's time
    view.apply(shard_done(T + 104, 2))
    assert view.frames_done == 30 and view.totals().fraction == 1.0


def test_a_recomputed_shard_replaces_its_scores() -> None:
    view = fold(started(), shard_done(T + 1, 0), shard_done(T + 2, 0))
    assert view.frames_done == 10 and view.virus_frames == 5 and view.histogram[0] == 10


def test_a_dead_run_shows_dead_with_gone_workers_no_eta_and_the_resume_command() -> None:
    view = fold(
        started(T),
        job_started(T, "/r", records=5, chunks=4, bases=100),
        prepared(T + 1, 2, 4, frames=20, shards=None),
        ev("worker_state", T + 1, 0, state="busy", pid=4242, job="a", shard=0, frames=10),
        shard_done(T + 5, 0),
        ev("progress", T + 6, 0, "a", shard=1, stage="esm", frames_done=5, frames_total=10),
    )
    view.resume_command = "cd /w && virnucpro-tui run a.fa --out /r"
    assert view.live and view.eta_seconds(T + 7) is not None
    view.process_gone(T + 8)
    assert view.dead and not view.live and run_state(view) == "dead"
    assert view.eta_seconds(T + 9) is None and view.throughput(now=T + 9) == 0.0
    assert view.workers[0].gone and view.frames_in_flight == 0
    line = progress_line(view, T + 9)
    assert "ETA none (not running)" in line and "workers: 1 gone" in line
    assert "DEAD: the run's process (pid 100) ended without finishing" in line
    lines = summary_lines(view)
    assert lines[0].startswith("run dead: 10 frames in 00:08")
    assert lines[-2:] == [
        "resumable: rerun the same command (same --out /r) to continue",
        "  cd /w && virnucpro-tui run a.fa --out /r",
    ]
    view.apply(ev("run_done", T + 9, status="complete", exit_code=0))  # it did finish after all
    assert not view.dead and run_state(view) == "complete"


def test_totals_are_estimated_once_the_sample_says_something_and_never_guessed() -> None:
    """The first record alone said ~24,401 frames for a run of 13,510 (its chunks had one frame
    each): a job is extrapolated from 30% of its chunks (or 300 of them), not from one record."""
    sizes = [
        {"job": "a", "bytes": 1000, "records": 10, "chunks": 100},
        {"job": "b", "bytes": 500, "records": 5, "chunks": 50},
    ]
    view = fold(
        ev("run_started", T, out="/r", jobs=["a", "b"], sizes=sizes),
        job_started(T, "/r/a", records=10, chunks=100, bases=1),
    )
    assert view.totals().total is None and "sizing the inputs" in progress_line(view, T)
    view.apply(prepared(T + 0.1, 10, 100, frames=40, shards=None, bytes_read=100, bytes_total=1000))
    assert view.totals().total is None  # 10 of 100 chunks: too small a sample
    assert "0 frames (sizing the inputs, 7% of the inputs read)" in progress_line(view, T + 0.1)
    view.apply(
        prepared(T + 0.2, 30, 100, frames=120, shards=None, bytes_read=300, bytes_total=1000)
    )
    # a: 120 frames per 30 chunks of 100; b, not started: 50 chunks at the same 4 per chunk
    assert view.totals() == Totals(0, 400 + 200, False)
    line = progress_line(view, T + 0.2)
    assert "  0.0% 0/~600 frames" in line and "?" not in line
    view.apply(prepared(T + 1, 100, 100, frames=300, shards=3))
    assert view.totals() == Totals(0, 300 + 150, False)  # b at a's 3 frames per chunk


def test_eta_is_smoothed_and_never_zero_while_frames_remain() -> None:
    view = fold(
        started(T),
        prepared(T, 4, 4, frames=100, shards=10),
    )
    for i in range(9):  # a shard of 10 frames every 2 s
        view.apply(
            ev(
                "progress",
                T + 2 * i,
                0,
                "a",
                shard=i,
                stage="start",
                frames_done=0,
                frames_total=10,
            )
        )
        view.apply(shard_done(T + 2 * i + 2, i))
    assert abs(view.throughput(now=T + 18) - 5.0) < 0.01
    assert view.eta_seconds(T + 18) == 2.0  # 10 frames left at 5 frames/s
    view.apply(
        ev("progress", T + 19, 0, "a", shard=9, stage="esm", frames_done=10, frames_total=10)
    )
    eta = view.eta_seconds(T + 19)
    assert eta is not None and eta >= 1.0  # work remains (the shard is not written): not 00:00
    assert "ETA 00:00" not in progress_line(view, T + 19)


def test_warm_up_is_a_phase_of_its_own_with_its_elapsed_time() -> None:
    view = fold(
        ev(
            "run_started",
            T,
            out="/r",
            jobs=["a"],
            workers=[{"worker": 0, "kind": "cuda", "index": 0, "uuid": "GPU-1", "name": "H200"}],
        ),
        ev("worker_state", T, 0, state="loading"),
        ev("model_load", T + 1, 0, model="esm", phase="start", source="/m"),
        ev("model_load", T + 8.7, 0, model="esm", phase="warmup_start", source="/m", compile=True),
    )
    esm = view.workers[0].models["esm"]
    assert esm.state == "warming up" and esm.compiling and esm.since == T + 8.7
    assert "workers: 1 compiling ESM-2 (00:42)" in progress_line(view, T + 8.7 + 42)
    warm_start = ev(
        "model_load", T + 8.7, 0, model="esm", phase="warmup_start", source="/m", compile=True
    )
    assert event_line(warm_start) == (
        "worker 0: esm compiling and warming up (the first shard waits for it)"
    )
    view.apply(
        ev("model_load", T + 66, 0, model="esm", phase="warmup_done", source="/m", seconds=57.3)
    )
    view.apply(
        model_loaded(
            T + 66, 0, "esm", 7.7, 5 * 2**30, source="/m", compile_seconds=57.3, dtype="bfloat16"
        )
    )
    assert (esm.state, esm.seconds, esm.warmup_seconds) == ("loaded", 7.7, 57.3)


def test_a_model_compiled_beside_says_it_runs_uncompiled_until_then() -> None:
    start = ev("model_load", T + 2, 0, model="esm", phase="compile_beside_start", source="/m")
    done = ev(
        "model_load", T + 20, 0, model="esm", phase="compile_beside_done", source="/m", seconds=17.5
    )
    assert event_line(start) == "worker 0: esm runs uncompiled while a process beside compiles it"
    assert event_line(done) == (
        "worker 0: esm compiled beside in 17.5 s: it runs compiled from now"
    )
    view = fold(ev("worker_state", T, 0, state="loading"), start)
    assert view.workers[0].models["esm"].compiling_beside
    view.apply(done)
    assert not view.workers[0].models["esm"].compiling_beside


def test_a_warm_up_on_kernels_compiled_before_says_it_loads_them() -> None:
    cached = ev(
        "model_load",
        T + 2,
        0,
        model="dnabert",
        phase="warmup_start",
        source="/m",
        compile=True,
        cached=True,
    )
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"], workers=[{"worker": 0, "kind": "cuda"}]),
        ev("worker_state", T, 0, state="loading"),
        ev("model_load", T + 1, 0, model="dnabert", phase="start", source="/m"),
        cached,
    )
    assert view.workers[0].models["dnabert"].cached
    assert "workers: 1 loading compiled DNABERT-S (00:03)" in progress_line(view, T + 5)
    assert event_line(cached) == (
        "worker 0: dnabert loading its compiled kernels and warming up "
        "(the first shard waits for it)"
    )


def test_stage_rates_come_from_synchronised_seconds_only() -> None:
    """On a GPU, the times at which batches were queued say nothing of the stage's speed: the
    rate comes from the device-synchronised stage seconds, and the stages add up to the shard."""
    gpu = [{"worker": 0, "kind": "cuda", "index": 0, "uuid": "GPU-1", "name": "H200"}]
    unsynced = fold(
        ev("run_started", T, out="/r", jobs=["a"], workers=gpu),
        ev("progress", T, 0, "a", shard=0, stage="start", frames_done=0, frames_total=2048),
        stage_end(T + 0.1, "dnabert", frames_done=1024, seconds=0.1, total=2048),
        stage_end(T + 2.46, "esm", frames_done=2048, seconds=2.46, total=2048),
    )
    assert unsynced.workers[0].esm_rate is None  # 868 proteins/s would be impossible: not shown
    synced = fold(
        ev("run_started", T, out="/r", jobs=["a"], workers=gpu),
        shard_done(
            T + 3.8,
            0,
            frames=2048,
            stage_seconds={"tokenize": 0.04, "dnabert": 0.18, "esm": 3.55, "classifier": 0.01},
        ),
    )
    w = synced.workers[0]
    assert round(w.esm_rate or 0) == 577 and round(w.dnabert_rate or 0) == 11378
    cpu = fold(
        started(T),
        ev("progress", T, 0, "a", shard=0, stage="start", frames_done=0, frames_total=100),
        stage_end(T + 1, "dnabert", frames_done=50, seconds=1.0, total=100),
        stage_end(T + 5, "esm", frames_done=100, seconds=5.0, total=100),
    )
    assert cpu.workers[0].esm_rate == 25.0  # CPU timings are synchronous


def test_sequences_called_virus_come_first_then_by_max_score() -> None:
    done = ev(
        "job_done",
        T,
        job="a",
        out_dir="/r",
        outputs={},
        sequences=3,
        viral_sequences=2,
        chunks=3,
        chunks_with_frames=3,
        chunks_without_frames=0,
        frames=9,
        virus_frames=5,
        viral_chunks=2,
        top_sequences=[
            ["contig_0013", 0.9387, "others"],
            ["c1", 0.91, "virus"],
            ["c2", 0.62, "virus"],
        ],
        skipped_shards=0,
        seconds=1.0,
        demo=False,
    )
    view = fold(started(), done)
    assert [t[0] for t in view.top_sequences] == ["c1", "c2", "contig_0013"]


def test_frames_computed_once_and_saved_features_in_progress_and_summary() -> None:
    """With duplicates, progress counts the frames to compute; the summary says how many were
    computed once and names the saved features with their size (docs/features.md)."""
    one_shard = prepared(T + 1, 4, 4, frames=10, shards=1, duplicate_frames=3)
    assert notable_text(one_shard) == (
        "job a: prepared 10 frames in 1 shard (3 identical frames reuse an earlier result)"
    )
    view = fold(
        ev("run_started", T, out="/r", jobs=["a"]),
        ev("job_started", T, job="a", input="a.fa", out_dir="/r", records=2, chunks_total=4,
           bases=2000),
        one_shard,
        ev("shard_done", T + 2, worker=0, job="a", shard=0, frames=7),
    )  # fmt: skip
    assert (view.frames_done, view.frames_total) == (7, 7)  # the 3 duplicates are not computed
    done = ev("job_done", T + 3, job="a", out_dir="/r",
              outputs={"prediction_results.txt": "/r/prediction_results.txt",
                       "prediction_features.pt": "/r/prediction_features.pt"},
              sequences=2, viral_sequences=1, chunks=4, chunks_with_frames=4,
              chunks_without_frames=0, frames=10, virus_frames=5, viral_chunks=2,
              top_sequences=[], skipped_shards=0, seconds=2.0, demo=True, duplicate_frames=3,
              features_path="/r/prediction_features.pt", features_bytes=3 * 2**20)  # fmt: skip
    view.apply(done)
    assert (view.frames_done, view.frames_total) == (10, 10)
    lines = summary_lines(view)
    # the features file is one of the outputs, listed once, on its own line with its size (the
    # completion summary listed it twice: issue 23)
    assert [line for line in lines if "prediction_features.pt" in line] == [
        "    features: /r/prediction_features.pt (3.0 MiB)"
    ]
    assert (
        "    computed once: 7 distinct frames; 3 identical frames reuse an earlier result" in lines
    )
    assert "    features: /r/prediction_features.pt (3.0 MiB)" in lines


def test_the_eta_of_a_run_that_stopped_unfinished_is_none_not_done() -> None:
    """'ETA done' is only for a complete run: an interrupted or failed one will not finish."""
    events = scenario.mid_run_events()
    last = events[-1].ts
    for status, code, shown in (
        ("interrupted", 130, "none (interrupted)"),
        ("failed", 1, "none (failed)"),
        ("complete", 0, "done"),
    ):
        done = ev(
            "run_done",
            last + 1,
            status=status,
            exit_code=code,
            seconds=60.0,
            frames=1,
            resumable=status != "complete",
            jobs={},
        )
        assert eta_text(fold(*events, done), last + 2) == shown


def test_a_run_starting_shows_no_percentage_of_nothing() -> None:
    """The header said ``100.0% 0/0`` while the run was starting."""
    view = RunView()
    assert view.totals().total is None
    line = progress_line(view, T)
    assert "0 frames (starting)" in line and "100.0%" not in line and "0/0 frames" not in line


def test_earlier_scores_count_once_their_shard_is_verified_again() -> None:
    """A live view of a resumed run is given what earlier runs scored (``restore``): a shard's
    scores count when this run verifies it (``shard_skipped``), once, and not before."""
    earlier = [shard_done(T, 0, frames=10), shard_done(T + 1, 1, frames=6)]
    view = fold(started(T + 10, resumed=True))
    view.restore(earlier)  # type: ignore[arg-type]
    assert (view.virus_frames, view.others_frames) == (0, 0)
    view.apply(ev("shard_skipped", T + 11, job="a", shard=0, frames=10))
    view.apply(ev("shard_skipped", T + 11, job="a", shard=0, frames=10))
    assert (view.virus_frames, view.others_frames, sum(view.histogram)) == (5, 5, 10)
    view.apply(shard_done(T + 12, 1, frames=6))  # recomputed this time: its own scores
    assert (view.virus_frames, view.others_frames) == (8, 8)
