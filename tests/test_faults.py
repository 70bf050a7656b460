"""Fault injection (docs/reliability.md): kills, Ctrl-C, a full disk and an unusable output
directory, each at a named stage of a real run (real processes, demo models).

Every test checks what the user sees (exit code, one clear last line, no traceback) and what is
kept: after a resume the outputs are byte-identical to an uninterrupted run, nothing is
recomputed that was finished, and no process of the run is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import (
    OUTPUT_FILES,
    assert_no_live_processes,
    cli,
    cli_env,
    events,
    kill_tree,
    orf,
    outputs,
    start_cli,
    wait_for_event,
    worker_pids,
)
from virnucpro_tui.cli import main

SMALL = ["--demo", "--no-ui", "--devices", "cpu:1", "--shard-size", "6"]


def orf_rich_fasta(records: int, length: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(f">orf{i} synthetic\n{orf(length, rng)}\n" for i in range(records))


def random_dna(length: int, seed: int) -> str:
    return "".join(random.Random(seed).choices("ACGT", k=length))


@pytest.fixture(scope="module")
def small_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 45 frames in 8 shards of 6: quick to score, several shards to lose or keep."""
    path = tmp_path_factory.mktemp("inputs") / "small.fa"
    path.write_text(orf_rich_fasta(10, 600, seed=7))
    return path


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, demo_env, small_input: Path
) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("baseline") / "run"
    r = cli(["run", str(small_input), "--out", str(out), *SMALL], demo_env)
    assert r.returncode == 0, r.stderr
    return outputs(out)


def shard_count(baseline: dict[str, bytes]) -> int:
    frames = baseline["run/prediction_results.txt"].count(b"\n") - 1
    return -(-frames // 6)


def run_args(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(inp), "--out", str(out), *SMALL, *extra]


def faulty_env(demo_models, faults: dict[str, Any]) -> dict[str, str]:
    return cli_env(demo_models.root, faults)


def session_events(out: Path, session: int) -> list[dict[str, Any]]:
    """Events of the ``session``-th run (0-based) on this run directory."""
    ev = events(out)
    starts = [i for i, e in enumerate(ev) if e["type"] == "run_started"]
    begin = starts[session]
    end = starts[session + 1] if session + 1 < len(starts) else len(ev)
    return ev[begin:end]


def shards_skipped(out: Path, session: int) -> list[int]:
    """The shards that the ``session``-th run found done already."""
    return [e["shard"] for e in session_events(out, session) if e["type"] == "shard_skipped"]


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def descendants(proc: subprocess.Popen[str]) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def assert_one_clear_error(stderr: str, *words: str) -> str:
    """The last line is the error, naming what it must; nothing looks like a crash."""
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("virnucpro-tui: error: "), stderr[-2000:]
    for word in words:
        assert word in last, (word, last)
    return last


def assert_no_final_outputs(out: Path) -> None:
    present = [name for name in OUTPUT_FILES if (out / name).exists()]
    assert not present, f"complete-looking outputs of an unfinished run: {present}"


def assert_nothing_left(out: Path, pids: set[int] | None = None) -> None:
    """No process of the run (``pids`` and its workers) alive, no complete-looking output."""
    assert_no_live_processes((pids or set()) | worker_pids(out))
    assert_no_final_outputs(out)


def fails(inp: Path, out: Path, env: dict[str, str], *words: str) -> None:
    """The command with a fault: exit status 1, the error naming ``words`` its last line."""
    r = cli(run_args(inp, out), env)
    assert r.returncode == 1
    assert_one_clear_error(r.stderr, *words)


def resume(inp: Path, out: Path, env: dict[str, str], expected: dict[str, bytes]) -> None:
    """The same command again, without faults: it completes with the ``expected`` outputs
    (those of an uninterrupted run), byte for byte."""
    r = cli(run_args(inp, out), env)
    assert r.returncode == 0, r.stderr
    assert outputs(out) == expected


def partial_files(out: Path) -> list[Path]:
    """Temporary files of atomic writes (records.tsv.partial is rewritten on resume anyway)."""
    return sorted(out.rglob(".*.partial"))


def wait_for_partial_output(out: Path, proc: subprocess.Popen[str], timeout: float = 120) -> Path:
    """The temporary prediction_results file of an assembly in progress, once it holds a row."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for partial in out.glob(".prediction_results.txt.*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if partial.stat().st_size > len("Sequence_ID\tPrediction\tscore1\tscore2\n"):
                    return partial
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before its assembly paused"
        time.sleep(0.1)
    raise AssertionError("no assembly in progress")


def interrupt(proc: subprocess.Popen[str], sig: signal.Signals, timeout: float = 60) -> str:
    """Signal the whole process group, as a terminal's Ctrl-C does; return stderr."""
    os.killpg(proc.pid, sig)
    try:
        _out, err = proc.communicate(timeout=timeout)
    finally:
        kill_tree(proc)
    return err


# -- kill -9 and Ctrl-C at each stage, then resume ----------------------------------------------


@pytest.fixture(scope="module")
def heavy_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 Mbp record first (about a second of chunking and translation, few frames), then
    ORF-rich records: a kill right after job_started lands in preparation."""
    path = tmp_path_factory.mktemp("inputs") / "heavy.fa"
    path.write_text(
        f">big random\n{random_dna(10_000_000, seed=3)}\n" + orf_rich_fasta(4, 600, seed=8)
    )
    return path


@pytest.mark.slow
def test_ctrl_c_then_kill9_during_prepare_then_resume(
    tmp_path: Path, demo_env, demo_models, heavy_input: Path
) -> None:
    clean = tmp_path / "clean" / "run"
    assert cli(run_args(heavy_input, clean), demo_env).returncode == 0
    out = tmp_path / "run"

    proc = start_cli(run_args(heavy_input, out), demo_env)
    wait_for_event(out, lambda e: e["type"] == "job_started", proc=proc)
    children = descendants(proc)
    err = interrupt(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resumable" in err
    first = session_events(out, 0)
    assert not [e for e in first if e["type"] in ("job_prepared", "shard_done")], (
        "stopped after prepare"
    )
    assert manifest(out)["status"] == "interrupted" and manifest(out)["resumable"] is True
    assert_nothing_left(out, children)

    proc = start_cli(run_args(heavy_input, out), demo_env)
    wait_for_event(
        out, lambda e: e["type"] == "job_started" and e["ts"] > first[-1]["ts"], proc=proc
    )
    children = descendants(proc)
    kill_tree(proc)
    proc.wait(timeout=30)
    second = session_events(out, 1)
    assert not [e for e in second if e["type"] in ("job_prepared", "shard_done")], (
        "killed after prepare"
    )
    assert_nothing_left(out, children)

    resume(heavy_input, out, demo_env, outputs(clean))


@pytest.mark.slow
def test_ctrl_c_then_kill9_during_assembly_then_resume(
    tmp_path: Path, demo_env, demo_models, small_input, baseline
) -> None:
    out = tmp_path / "run"
    slow_assembly = faulty_env(demo_models, {"assembly_delay_s": 120})

    proc = start_cli(run_args(small_input, out), slow_assembly)
    wait_for_partial_output(out, proc)
    children = descendants(proc)
    err = interrupt(proc, signal.SIGINT, timeout=30)  # well before the 120 s pause ends
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert manifest(out)["status"] == "interrupted"
    assert not partial_files(out), "an abandoned assembly removes its temporary files"
    assert_nothing_left(out, children)
    assert len(list((out / "shards" / "small").glob("0*.tsv"))) == shard_count(baseline)

    proc = start_cli(run_args(small_input, out), slow_assembly)
    partial = wait_for_partial_output(out, proc)
    children = descendants(proc)
    kill_tree(proc)
    proc.wait(timeout=30)
    assert_nothing_left(out, children)
    assert partial.name.startswith(".") and partial.exists()  # a hidden temporary name, never final

    resume(small_input, out, demo_env, baseline)
    assert not partial_files(out), "the resume clears what the killed assembly left"
    assert len(shards_skipped(out, 2)) == shard_count(baseline), "nothing finished is recomputed"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_stop_signal_to_the_group_mid_shard_finishes_the_shards_in_flight_then_resumes(
    tmp_path: Path, demo_env, demo_models, small_input, baseline, sig: signal.Signals
) -> None:
    """A terminal's Ctrl-C, or systemd/SLURM stopping the job, signals every process."""
    out = tmp_path / "run"
    proc = start_cli(
        run_args(small_input, out), faulty_env(demo_models, {"sleep_per_batch_s": 0.4})
    )
    busy = wait_for_event(
        out, lambda e: e["type"] == "progress" and e.get("stage") == "dnabert", proc=proc
    )
    children = descendants(proc)
    err = interrupt(proc, sig)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopping after the shards in flight" in err
    command = shlex.join([sys.executable, "-m", "virnucpro_tui", *run_args(small_input, out)])
    assert f"\n  {command}\n" in err  # the exact command that resumes it, as attach prints
    ev = events(out)
    assert (busy["job"], busy["shard"]) in {
        (e["job"], e["shard"]) for e in ev if e["type"] == "shard_done"
    }
    assert not [e for e in ev if e["type"] in ("shard_requeued", "error")]
    assert not [e for e in ev if e["type"] == "worker_state" and e["state"] == "crashed"]
    assert manifest(out)["status"] == "interrupted" and manifest(out)["resumable"] is True
    assert_nothing_left(out, children)
    done = {e["shard"] for e in ev if e["type"] == "shard_done"}

    resume(small_input, out, demo_env, baseline)
    assert set(shards_skipped(out, 1)) == done


# -- a worker killed again and again ------------------------------------------------------------


def kill_worker_when_busy(out: Path, proc: subprocess.Popen[str], generation: int) -> int:
    busy = wait_for_event(
        out,
        lambda e: (
            e["type"] == "worker_state"
            and e["state"] == "busy"
            and e.get("generation") == generation
        ),
        proc=proc,
    )
    os.kill(busy["pid"], signal.SIGKILL)
    return busy["pid"]


def kill_the_worker_twice(
    demo_models, inp: Path, out: Path, max_restarts: int, timeout: float
) -> tuple[set[int], int, str]:
    """A run whose worker is killed (SIGKILL) once busy, in generations 0 and 1: the pids
    killed, the exit status and stderr."""
    env = faulty_env(demo_models, {"sleep_per_batch_s": 0.4, "generations": [0, 1]})
    proc = start_cli(run_args(inp, out, "--max-restarts", str(max_restarts)), env)
    try:
        killed = {kill_worker_when_busy(out, proc, g) for g in (0, 1)}
        _out, err = proc.communicate(timeout=timeout)
    finally:
        kill_tree(proc)
    return killed, proc.returncode, err


@pytest.mark.slow
def test_worker_killed_repeatedly_up_to_the_restart_limit(
    tmp_path: Path, demo_models, small_input, baseline
) -> None:
    out = tmp_path / "run"
    killed, code, err = kill_the_worker_twice(demo_models, small_input, out, 2, timeout=180)
    assert code == 0, err
    ev = events(out)
    crashed = [e for e in ev if e["type"] == "worker_state" and e["state"] == "crashed"]
    restarting = [e for e in ev if e["type"] == "worker_state" and e["state"] == "restarting"]
    assert len(crashed) == 2 and all("SIGKILL" in e["reason"] for e in crashed)
    assert [e["generation"] for e in restarting] == [1, 2]
    assert outputs(out) == baseline  # each requeued shard scored exactly once, in order
    assert_no_live_processes(killed | worker_pids(out))


@pytest.mark.slow
def test_worker_killed_past_the_restart_limit_fails_clearly_then_resumes(
    tmp_path: Path, demo_env, demo_models, small_input, baseline
) -> None:
    out = tmp_path / "run"
    killed, code, err = kill_the_worker_twice(demo_models, small_input, out, 1, timeout=120)
    assert code == 1
    assert_one_clear_error(
        err, "every worker failed past its restart limit", "SIGKILL", "logs/worker-0.log"
    )
    assert manifest(out)["status"] == "failed" and manifest(out)["resumable"] is True
    assert_nothing_left(out, killed)

    resume(small_input, out, demo_env, baseline)


# -- a full disk --------------------------------------------------------------------------------


@pytest.mark.slow
def test_disk_full_writing_a_shard_stops_at_once_and_resumes(
    tmp_path: Path, demo_env, demo_models, small_input, baseline
) -> None:
    out = tmp_path / "run"
    shard = out / "shards" / "small" / "000002.tsv"
    full = faulty_env(demo_models, {"enospc_on_shard_write": 3})
    fails(small_input, out, full, str(shard), "No space left on device", "resumable")
    ev = events(out)
    assert not [e for e in ev if e["type"] == "shard_requeued"], "a full disk is not retried"
    assert [e["shard"] for e in ev if e["type"] == "error" and e.get("disk_full")] == [2]
    m = manifest(out)
    assert (
        m["status"] == "failed"
        and m["resumable"] is True
        and "No space left on device" in m["error"]
    )
    assert not shard.exists() and not partial_files(out)
    assert_nothing_left(out)

    resume(small_input, out, demo_env, baseline)
    assert sorted(shards_skipped(out, 1)) == [0, 1]


@pytest.mark.slow
def test_disk_full_writing_the_final_outputs_then_resume(
    tmp_path: Path, demo_env, demo_models, small_input, baseline
) -> None:
    out = tmp_path / "run"
    full = faulty_env(demo_models, {"enospc_in_assembly": True})
    fails(small_input, out, full, str(out), "No space left on device", "final outputs", "resumable")
    m = manifest(out)
    assert m["status"] == "failed" and m["resumable"] is True
    assert not partial_files(out)
    assert_nothing_left(out)

    resume(small_input, out, demo_env, baseline)
    assert len(shards_skipped(out, 1)) == shard_count(baseline)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 4 MiB tmpfs: a disk that really fills up. Mounting needs root (CAP_SYS_ADMIN)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {r.stderr.strip()}"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_up(path: Path) -> None:
    with path.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == 28


@pytest.mark.slow
def test_real_disk_full_on_a_tmpfs_then_space_back(
    tiny_tmpfs: Path, demo_env, demo_models, small_input, baseline
) -> None:
    out = tiny_tmpfs / "run"
    proc = start_cli(
        run_args(small_input, out), faulty_env(demo_models, {"sleep_per_batch_s": 0.4})
    )
    try:
        wait_for_event(out, lambda e: e["type"] == "shard_done", proc=proc)
        fill_up(tiny_tmpfs / "filler")
        _out, err = proc.communicate(timeout=120)
    finally:
        kill_tree(proc)
    assert proc.returncode == 1
    assert_one_clear_error(
        err, str(out / "shards" / "small"), "No space left on device", "resumable"
    )
    assert_nothing_left(out)
    done = {e["shard"] for e in events(out) if e["type"] == "shard_done"}

    (tiny_tmpfs / "filler").unlink()  # space is back
    resume(small_input, out, demo_env, baseline)
    assert set(shards_skipped(out, 1)) == done


# -- an output directory that cannot be used --------------------------------------------------


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_unwritable_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_models, small_input, where: str
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file\n")
    out = blocker / "run" if where == "under_a_file" else blocker
    before = tree(tmp_path)
    assert main(run_args(small_input, out)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    problem = "it is a file" if where == "is_a_file" else f"{blocker} is a file"
    assert lines[0] == (
        f"virnucpro-tui: error: {out}: cannot use the output directory ({problem}, not a "
        "directory); --out names a directory, created if missing"
    )
    assert tree(tmp_path) == before  # nothing created beside it
    assert (
        not Path("run").exists() and not Path("events.jsonl").exists()
    )  # nor in the working directory
    assert blocker.read_text() == "a regular file\n"


def test_nothing_is_left_in_a_failed_prepare_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], small_input
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["prepare", str(small_input), "--length", "500", "--out", str(blocker / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"virnucpro-tui: error: {blocker / 'o'}: cannot write ({blocker} is a file, not a directory)"
    )
    assert tree(tmp_path) == {"file"}
    assert main(["prepare", str(small_input), "--length", "500", "--out", str(blocker)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"virnucpro-tui: error: {blocker}: cannot write (it is a file, not a directory)"
    )


def test_partial_files_are_hidden_names(tmp_path: Path) -> None:
    """What a killed write leaves is a dot-file ending in .partial, never a final name."""
    from virnucpro_tui.core.atomic import atomic_text_writer

    target = tmp_path / "prediction_results.txt"
    with pytest.raises(KeyboardInterrupt), atomic_text_writer(target) as fh:
        fh.write("Sequence_ID\tPrediction\tscore1\tscore2\n")
        raise KeyboardInterrupt
    assert not target.exists() and not list(tmp_path.iterdir())
