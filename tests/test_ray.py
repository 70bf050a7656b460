"""The Ray backend (issue #6): a real local Ray cluster on CPU runs the demo models through
``run --backend ray``; outputs must be byte-identical to the local backend's, the events the
same, and a killed actor must cost nothing but its shard. The tests that need Ray are skipped,
with the reason, only when ray is not importable."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import helpers
from virnucpro_tui.errors import InputError
from virnucpro_tui.pool.devices import DeviceSlot, GpuInfo
from virnucpro_tui.pool.events import Event, Heartbeat, WarningEvent, WorkerState
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.ray.actor import EventBuffer
from virnucpro_tui.pool.ray.backend import security_notices
from virnucpro_tui.pool.ray.compat import describe_death, died_with_node, starts_private_cluster
from virnucpro_tui.pool.ray.placement import (
    ClusterNode,
    placed_slot,
    run_dir_problem,
    slots_for_cluster,
)

BASE = [*helpers.DEMO_RUN, "--devices", "cpu:1"]


HEAD_SCRIPT = """
import os, sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
print(ray.get_runtime_context().gcs_address, os.environ.get("RAY_AUTH_MODE", ""), flush=True)
sys.stdin.read()  # until the tests close stdin; the cluster ends with this process
"""


@pytest.fixture(scope="module")
def ray_module_dir() -> Iterator[Path]:
    """The private Ray temp directory of this module's cluster."""
    path = helpers.private_ray_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head(ray_module_dir: Path) -> Iterator[tuple[str, str]]:
    """A local Ray cluster (2 CPUs) for the module: its address and auth mode."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(ray_module_dir)
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        address, _, auth = (head.stdout.readline() if head.stdout else "").strip().partition(" ")
        if not address:
            pytest.fail(f"the Ray head did not start (exit {head.poll()})")
        yield address, auth
    finally:
        if head.stdin:
            head.stdin.close()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)


@pytest.fixture(scope="module")
def ray_env(demo_env: dict[str, str], ray_head, ray_module_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in demo_env.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(ray_module_dir)
    if ray_head[1]:  # e.g. token authentication, on by default for local clusters of Ray >= 2.59
        env["RAY_AUTH_MODE"] = ray_head[1]
    return env


def ray_args(ray_head: tuple[str, str]) -> list[str]:
    return ["--backend", "ray", "--ray-address", ray_head[0]]


@helpers.needs_ray
def test_ray_backend_is_byte_identical_to_local_and_streams_the_same_events(
    tmp_path: Path, ray_head, ray_env, local_baseline
) -> None:
    out = tmp_path / "run"
    r = helpers.cli(helpers.sample_run(out, "--devices", "cpu:1", *ray_args(ray_head)), ray_env)
    assert r.returncode == 0, r.stderr
    # prediction_results, highestscore csv, summary
    assert helpers.outputs(out, helpers.SAMPLE_JOBS) == local_baseline
    ev = helpers.events(out)
    assert all({"v", "ts", "type", "worker", "job"} <= e.keys() for e in ev)
    assert next(e for e in ev if e["type"] == "run_started")["backend"] == "ray"
    # two inputs, one persistent actor: each model loads exactly once
    loads = sorted(
        (e["worker"], e["model"]) for e in ev if e["type"] == "model_load" and e["phase"] == "done"
    )
    assert loads == [(0, "classifier"), (0, "dnabert"), (0, "esm")]
    done = sorted((e["job"], e["shard"]) for e in ev if e["type"] == "shard_done")
    assert done == helpers.SAMPLE_SHARDS
    assert any(e["type"] == "heartbeat" and e["worker"] == 0 for e in ev)
    mem = [e for e in ev if e["type"] == "gpu_memory"]
    assert mem and all(e["kind"] == "cpu" and e["total"] > e["free"] > 0 for e in mem)
    assert [e["job"] for e in ev if e["type"] == "job_done"] == helpers.SAMPLE_JOBS
    states = [e["state"] for e in ev if e["type"] == "worker_state"]
    assert states[0] == "starting" and states[-1] == "stopped" and "crashed" not in states
    # the actor names its Ray node and host in its worker_state events (the supervisor's own
    # "stopped" does not)
    sent = [e for e in ev if e["type"] == "worker_state" and e["state"] != "stopped"]
    assert {(len(e["node"]), e["host"]) for e in sent} == {(56, socket.gethostname())}
    # a cluster with token authentication, joined with the token: no security warning
    assert not [e for e in ev if e["type"] == "warning"]
    assert "token authentication" not in r.stderr
    # the actor's output went to its log, nothing of Ray's to the terminal
    assert "Ray actor" in (out / "logs" / "worker-0.log").read_text()
    assert "raylet" not in r.stderr + r.stdout and "ray::" not in r.stderr + r.stdout


@helpers.needs_ray
def test_a_killed_actor_is_replaced_and_its_shard_recomputed(
    tmp_path: Path, ray_head, ray_env, local_baseline
) -> None:
    out = tmp_path / "run"
    env = {
        **ray_env,
        "VIRNUCPRO_TUI_FAULTS": json.dumps({"sleep_per_batch_s": 0.3, "workers": [0]}),
    }
    args = [
        "run",
        str(helpers.SAMPLE_READS),
        "--out",
        str(out),
        *BASE,
        *ray_args(ray_head),
        "--events-jsonl",
        "-",
    ]
    proc = helpers.start_cli(args, env)
    try:
        busy = helpers.wait_for_event(
            out, lambda e: e["type"] == "progress" and e["stage"] == "dnabert", proc=proc
        )
        pid = next(
            e["pid"] for e in helpers.events(out) if e["type"] == "worker_state" and e.get("pid")
        )
        os.kill(pid, signal.SIGKILL)  # the actor's process, as named by its worker_state event
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        helpers.kill_tree(proc)
    assert proc.returncode == 0, stderr
    ev = helpers.events(out)
    crashed = [e for e in ev if e["type"] == "worker_state" and e["state"] == "crashed"]
    assert len(crashed) == 1 and crashed[0]["worker"] == 0 and "actor died" in crashed[0]["reason"]
    assert any(
        e["type"] == "worker_state" and e["state"] == "restarting" and e["generation"] == 1
        for e in ev
    )
    requeued = {(e["job"], e["shard"]) for e in ev if e["type"] == "shard_requeued"}
    assert (busy["job"], busy["shard"]) in requeued and len(
        requeued
    ) <= 2  # its shard and the prefetched one
    assert {e["pid"] for e in ev if e["type"] == "worker_state" and e.get("pid")} - {
        pid
    }  # a new process
    for name in helpers.OUTPUT_FILES:
        assert (out / name).read_bytes() == local_baseline[f"sample_reads/{name}"], name
    # stdout carried the events and nothing else (Ray's own notices go to logs/ray-driver.log)
    assert [json.loads(line)["type"] for line in stdout.splitlines()][-1] == "run_done"
    helpers.assert_no_live_processes(helpers.worker_pids(out))  # the actors are gone with the run


@pytest.mark.slow
def test_without_ray_the_backend_says_how_to_install_it(tmp_path: Path, demo_models) -> None:
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named ray (test shim)')\n")
    env = helpers.cli_env(demo_models.root)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim.parent), env.get("PYTHONPATH")]))
    r = helpers.cli(
        [
            "run",
            str(helpers.SAMPLE_READS),
            "--out",
            str(tmp_path / "run"),
            *BASE,
            "--backend",
            "ray",
        ],
        env,
    )
    assert r.returncode == 2
    assert "virnucpro-tui[ray]" in r.stderr and "pip install" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- pieces that need no cluster -----------------------------------------------------------------
NODES = [
    ClusterNode("head", "gpu-a", 64, 2, "H200"),
    ClusterNode("n2", "gpu-b", 64, 1, "H200"),
    ClusterNode("n3", "cpu-c", 32, 0),
]


def test_cluster_slots_are_one_per_gpu_across_nodes() -> None:
    slots, where = slots_for_cluster("auto", NODES)
    assert [(s.worker, s.kind, s.index) for s in slots] == [
        (0, "cuda", 0),
        (1, "cuda", 1),
        (2, "cuda", 0),
    ]
    assert [s.label for s in slots] == [
        "GPU 0 (H200 @ gpu-a)",
        "GPU 1 (H200 @ gpu-a)",
        "GPU 0 (H200 @ gpu-b)",
    ]
    assert where == {0: "head", 1: "head", 2: "n2"}
    # a cluster without GPUs: one CPU worker per node that has CPUs, pinned to it
    assert slots_for_cluster("auto", NODES[2:]) == (
        [DeviceSlot(0, "cpu", name="CPU @ cpu-c")],
        {0: "n3"},
    )
    cpu_only = [
        ClusterNode("h", "a", 4, 0),
        ClusterNode("x", "b", 0, 0),
        ClusterNode("y", "c", 8, 0),
    ]
    slots, where = slots_for_cluster("auto", cpu_only)
    assert [(s.worker, s.kind, s.name) for s in slots] == [
        (0, "cpu", "CPU @ a"),
        (1, "cpu", "CPU @ c"),
    ]
    assert where == {0: "h", 1: "y"}  # the node without CPUs (a head started with 0) gets none
    # cpu:N deals the workers round-robin over the nodes with CPUs
    cpu, where = slots_for_cluster("cpu:3", NODES)
    assert [(s.worker, s.kind) for s in cpu] == [(0, "cpu"), (1, "cpu"), (2, "cpu")]
    assert where == {0: "head", 1: "n2", 2: "n3"}
    assert slots_for_cluster("cpu:5", cpu_only)[1] == {0: "h", 1: "y", 2: "h", 3: "y", 4: "h"}
    # no node information (or no CPUs anywhere): unpinned, as Ray places them
    assert slots_for_cluster("cpu:2", []) == ([DeviceSlot(0, "cpu"), DeviceSlot(1, "cpu")], {})
    assert slots_for_cluster("auto", []) == ([DeviceSlot(0, "cpu")], {})
    with pytest.raises(InputError, match="auto .* or cpu:N"):
        slots_for_cluster("0,1", NODES)
    with pytest.raises(InputError, match="1..256"):
        slots_for_cluster("cpu:0", NODES)


def test_actor_death_reasons_are_short() -> None:
    text = (
        "The actor died unexpectedly before finishing this task.\n\tclass_name: WorkerActor\n"
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR "
        "Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file. "
        "Some common causes include: (1) ..."
    )
    assert describe_death(RuntimeError(text)) == (
        "actor died (its worker process has died; SYSTEM_ERROR: "
        "Worker unexpectedly exits with a connection error code 2)"
    )
    killed = "The actor is dead because it was killed by `ray.kill`."
    assert describe_death(RuntimeError(killed)) == "actor died (it was killed by ray.kill)"


def numbered(i: int, telemetry: bool) -> Event:
    """Event ``i`` (its ``shard``): a heartbeat (telemetry) or a warning (kept)."""
    if telemetry:
        return Heartbeat(worker=0, state=WorkerState.BUSY, shard=i, since_progress=0.0, pid=1)
    return WarningEvent(worker=0, shard=i, message="kept")


def test_event_buffer_long_polls_and_confirms_delivery() -> None:
    buf = EventBuffer(limit=3)
    assert buf.drain(0.01) == [] and buf.wait_delivered(0.01)
    for i in range(5):
        buf.put(numbered(i, telemetry=i > 0))
    buf.put(numbered(5, telemetry=False))  # telemetry is dropped past the limit, never the rest
    assert [getattr(e, "shard", None) for e in buf.drain(0.01, settle_s=0)] == [0, 1, 2, 5]
    assert not buf.wait_delivered(0.01)  # handed out, but the pool has not asked again yet
    assert buf.drain(0.01) == [] and buf.wait_delivered(0.01)


def test_a_gpu_actor_reports_the_gpu_ray_gave_it(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [GpuInfo(i, f"GPU-{i}abc", "NVIDIA H200", 141 * 2**30) for i in range(4)]
    monkeypatch.setattr("virnucpro_tui.pool.ray.placement.nvml_gpus", lambda: gpus)
    slot = DeviceSlot(1, "cuda", 0, None, "H200 @ gpu-a")
    assert placed_slot(slot, ["3"], "gpu-a") == DeviceSlot(
        1, "cuda", 3, "GPU-3abc", "NVIDIA H200 @ gpu-a"
    )
    assert placed_slot(slot, ["GPU-2a"], "gpu-b").label == "GPU 2 (NVIDIA H200 @ gpu-b)"
    assert placed_slot(slot, [], "gpu-c").label == "GPU 0 (H200 @ gpu-c)"  # NVML could not tell
    assert placed_slot(DeviceSlot(0, "cpu"), [], "x") == DeviceSlot(0, "cpu")


def test_an_actor_that_lost_its_node_is_told_apart_from_one_that_died() -> None:
    text = (
        "The actor died unexpectedly before finishing this task.\n\tclass_name: WorkerActor\n"
        "\tpid: 5806\n\tip: 192.0.2.2\nThe actor died because its node has died. Node Id: "
        "62b5ccd23b842419b9268d04017a15a766260d17a5a0520383b930b8\n\tthe actor's node was "
        "terminated unexpectedly: health check failed due to missing too many heartbeats"
    )
    assert describe_death(RuntimeError(text)) == (
        "node lost (Ray node 62b5ccd23b84: terminated unexpectedly: health check failed due "
        "to missing too many heartbeats)"
    )
    assert died_with_node(RuntimeError(text))
    killed = RuntimeError("The actor is dead because it was killed by `ray.kill`.")
    assert not died_with_node(killed)

    class Preempted(RuntimeError):
        preempted = True

    assert died_with_node(Preempted("drained by the autoscaler"))


def test_a_node_checks_it_shares_the_run_directory(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    problem = run_dir_problem(layout, "abc", "node7 (0123)", wait_s=0)
    assert problem is not None and str(layout.root) in problem and "node7 (0123)" in problem
    assert "every node mounts at the same path" in problem
    layout.logs.mkdir(parents=True)
    layout.ray_run_marker.write_text("another run's token\n")
    assert run_dir_problem(layout, "abc", "x", wait_s=0) is not None
    layout.ray_run_marker.write_text("abc\n")
    assert run_dir_problem(layout, "abc", "x", wait_s=0) is None
    assert [p.name for p in layout.logs.iterdir()] == [layout.ray_run_marker.name]  # probe gone


def test_a_warning_names_a_cluster_joined_without_authentication_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The warnings' wording, through the function the factory calls (no cluster needed)."""
    assert security_notices("10.1.2.3:6379", private=False, token=True) == []
    (line,) = security_notices("10.1.2.3:6379", private=False, token=False)
    assert line == (
        "the Ray cluster at 10.1.2.3:6379 has no token authentication (it accepted this run "
        "without a token): anyone who can reach it can run code on it; enable it with "
        "`ray get-auth-token --generate` and RAY_AUTH_MODE=token on every node before "
        "`ray start` and for this command (docs/ray.md#security)"
    )
    assert security_notices("10.1.2.3:6379", private=False, token=None) == [line]  # Ray < 2.52
    # the cluster a run starts for itself: silent when it is loopback-only with a token
    assert security_notices("127.0.0.1:6379", private=True, token=True) == []
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert security_notices("10.1.2.3:6379", private=True, token=False) == [
        "the Ray cluster started for this run listens on 10.1.2.3, not on loopback only: other "
        "machines can reach it",
        "the Ray cluster started for this run has no token authentication (RAY_AUTH_MODE="
        "disabled): any local user can run code in it; use Ray >= 2.52 and unset RAY_AUTH_MODE "
        "or set it to token",
    ]


@helpers.needs_ray
def test_a_private_cluster_is_started_only_when_ray_would_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # no `ray start` cluster recorded here
    assert starts_private_cluster(None) and starts_private_cluster("local")
    assert not starts_private_cluster("10.0.0.1:6379") and not starts_private_cluster("auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert not starts_private_cluster(None)


def test_the_ray_internals_the_backend_touches_are_all_there() -> None:
    """Every touch of Ray's internals is in pool/ray/compat.py and named in its INTERNALS; the
    installed Ray must still have each, or this fails naming the ones an upgrade moved."""
    import ast

    from virnucpro_tui.pool.ray import compat

    assert compat.missing_internals() == []
    package = Path(compat.__file__).parent.parent.parent  # virnucpro_tui
    touches = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ray._"):
                touches.add((path.name, node.module))
            elif isinstance(node, ast.Import):
                touches |= {(path.name, a.name) for a in node.names if a.name.startswith("ray._")}
    assert {where for where, _ in touches} == {"compat.py"}, touches
    assert {module for _, module in touches} == {m for m, _ in compat.INTERNALS if "._" in m}
