"""Ray across machines, simulated on one (issue #15), and Ray security.

A multi-node cluster is ``ray.cluster_utils.Cluster`` on this machine: each node has its own
raylet, CPUs, a custom resource and a label, and the Ray scheduler treats them as separate
machines. ``run --backend ray --ray-address`` joins it through the real command line. The
tests check placement (one actor per slot, on its node, from ``worker_state`` events), events
from every node, outputs byte-identical to the local pool, a node removed mid-run, and a node
that does not share ``--out``. What only real machines can show: docs/ray.md#what-was-tested.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import helpers

pytestmark = list(helpers.RAY_TEST_MARKS)

# a lost node is noticed in seconds, not after Ray's default ~30 s of missed health checks
FAST_HEALTH_CHECKS = {
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3,
}
NO_TOKEN_WARNING = "has no token authentication (it accepted this run without a token)"


# -- a cluster of several nodes on this machine -------------------------------------------------
@dataclass
class SimCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    nodes: dict[str, Any]  # name -> ray._private.node.Node, the head first
    ray_tmp: Path

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    @property
    def ids(self) -> dict[str, str]:
        return {name: node.node_id for name, node in self.nodes.items()}

    def name_of(self, node_id: str) -> str:
        return next(name for name, nid in self.ids.items() if nid == node_id)

    def documented_order(self) -> list[str]:
        """Node names in the order docs/ray.md gives for pinning: the head first, then by host
        (one host here) and node id."""
        head, *others = self.nodes
        return [head, *sorted(others, key=lambda name: self.ids[name])]

    def env(self, demo_root: Path, faults: dict[str, Any] | None = None) -> dict[str, str]:
        """The command's environment: a user who configured no Ray authentication."""
        env = helpers.cli_env(demo_root, faults)
        for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
            env.pop(name, None)
        env["RAY_TMPDIR"] = str(self.ray_tmp)
        return env

    def live_node_ids(self) -> set[str]:
        return {n["NodeID"] for n in self.cluster.global_state.node_table() if n["Alive"]}


def _node_args(name: str, cpus: int) -> dict[str, Any]:
    return {"num_cpus": cpus, "resources": {f"vt_node_{name}": 1}, "labels": {"vt-node": name}}


@pytest.fixture
def make_cluster(
    ray_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, int]], SimCluster]]:
    """Start a cluster of named nodes with the given CPUs (the first is the head); every node
    is stopped afterwards, whatever the test did."""
    started: list[Any] = []

    def make(cpus: dict[str, int]) -> SimCluster:
        from ray.cluster_utils import Cluster

        monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # as `ray start` without a token
        # the actors import this checkout, whatever directory a command runs in
        monkeypatch.setenv(
            "PYTHONPATH",
            os.pathsep.join(filter(None, [str(helpers.ROOT), os.environ.get("PYTHONPATH")])),
        )
        (head, head_cpus), *others = cpus.items()
        args = {**_node_args(head, head_cpus), "_system_config": FAST_HEALTH_CHECKS}
        home = os.getcwd()
        os.chdir(ray_tmp)  # the nodes, and so the actors, work in a directory of their own
        try:
            cluster = Cluster(initialize_head=True, head_node_args=args)
            started.append(cluster)
            nodes = {head: cluster.head_node}
            for name, n in others:
                nodes[name] = cluster.add_node(**_node_args(name, n))
        finally:
            os.chdir(home)
        cluster.wait_for_nodes(timeout=120)
        return SimCluster(cluster, nodes, ray_tmp)

    try:
        yield make
    finally:
        for cluster in started:
            try:
                cluster.shutdown()
            except Exception:  # noqa: BLE001 - a node removed by the test, a late process
                for node in [cluster.head_node, *cluster.worker_nodes]:
                    if node is not None:
                        node.kill_all_processes(check_alive=False, allow_graceful=False)


def ray_run(sim: SimCluster, out: Path | str, *extra: str) -> list[str]:
    return helpers.sample_run(
        Path(out),
        "--backend",
        "ray",
        "--ray-address",
        sim.address,
        *extra,
    )


def actor_nodes(ev: list[dict[str, Any]]) -> dict[tuple[int, int], str]:
    """(worker, generation) -> the Ray node its actor reported from."""
    return {
        (e["worker"], e["generation"]): e["node"]
        for e in ev
        if e["type"] == "worker_state" and e.get("node")
    }


def shards_by_node(ev: list[dict[str, Any]]) -> dict[str, set[tuple[str, int]]]:
    """The node each finished shard came from: its worker's node when it reported it."""
    where: dict[int, str] = {}
    done: dict[str, set[tuple[str, int]]] = {}
    for e in ev:
        if e["type"] == "worker_state" and e.get("node"):
            where[e["worker"]] = e["node"]
        elif e["type"] == "shard_done":
            done.setdefault(where[e["worker"]], set()).add((e["job"], e["shard"]))
    return done


# -- placement, events, outputs ---------------------------------------------------------------
def test_three_nodes_one_actor_each_outputs_identical_to_the_local_pool(
    tmp_path: Path, demo_models, local_baseline, make_cluster
) -> None:
    sim = make_cluster({"a": 1, "b": 1, "c": 1})
    # slow batches, so that every actor gets shards before the others have done them all;
    # a relative --out from another directory: each actor's own directory is elsewhere
    env = sim.env(demo_models.root, {"sleep_per_batch_s": 0.5})
    r = helpers.cli(ray_run(sim, "run", "--devices", "auto"), env, timeout=300, cwd=tmp_path)
    out = tmp_path / "run"
    assert r.returncode == 0, r.stderr
    # all three files of both inputs, byte for byte
    assert helpers.outputs(out, helpers.SAMPLE_JOBS) == local_baseline
    ev = helpers.events(out)
    started = next(e for e in ev if e["type"] == "run_started")
    assert started["backend"] == "ray"
    assert [w["name"] for w in started["workers"]] == ["CPU @ " + os.uname().nodename] * 3

    # placement: one actor per slot, each on the node it is pinned to, one per node
    placed = actor_nodes(ev)
    expected = {(w, 0): sim.ids[name] for w, name in enumerate(sim.documented_order())}
    assert placed == expected, {k: sim.name_of(v) for k, v in placed.items()}
    # events from every node: each actor's heartbeats, and shard results from each node
    for w in range(3):
        assert any(e["type"] == "heartbeat" and e["worker"] == w for e in ev), w
    done = shards_by_node(ev)
    assert set(done) == set(sim.ids.values()), {sim.name_of(n): len(s) for n, s in done.items()}
    assert sorted(set().union(*done.values())) == helpers.SAMPLE_SHARDS
    loads = sorted(
        (e["worker"], e["model"]) for e in ev if e["type"] == "model_load" and e["phase"] == "done"
    )
    assert loads == sorted((w, m) for w in range(3) for m in ("classifier", "dnabert", "esm"))
    # the shard files are in the one shared run directory, none in the actors' own directory
    files = sorted((f.parent.name, int(f.stem)) for f in (out / "shards").glob("*/[0-9]*.tsv"))
    assert files == helpers.SAMPLE_SHARDS
    assert not (sim.ray_tmp / "run").exists()
    states = [e["state"] for e in ev if e["type"] == "worker_state"]
    assert "crashed" not in states and states.count("stopped") == 3

    # this cluster has no token authentication: one warning line says so and how to enable it
    lines = [line for line in r.stderr.splitlines() if NO_TOKEN_WARNING in line]
    assert len(lines) == 1, r.stderr
    assert sim.address in lines[0] and "RAY_AUTH_MODE=token" in lines[0]
    assert "ray get-auth-token --generate" in lines[0]
    assert [e["message"] for e in ev if e["type"] == "warning"] == [
        lines[0].split("warning: ", 1)[1]
    ]


# -- a node lost mid-run ------------------------------------------------------------------------
def _remove_node_while_busy(
    sim: SimCluster, out: Path, proc: subprocess.Popen[str]
) -> tuple[str, int, tuple[str, int], float]:
    """Take away the node of the first actor inside a shard (the head's aside: it holds the
    cluster), right after the shard's first model, when a slowed second batch keeps it there
    for seconds. The first, not a chosen one: on a loaded machine a chosen actor may get its
    first shard only when little work is left. Returns the node's name, the actor's worker
    number, that shard and the time."""
    order = sim.documented_order()  # worker n runs on order[n]; order[0] is the head
    busy = helpers.wait_for_event(
        out,
        lambda e: e["type"] == "progress" and e["stage"] == "dnabert" and e["worker"] > 0,
        timeout=180,
        proc=proc,
    )
    worker = busy["worker"]
    victim = order[worker]
    sim.cluster.remove_node(sim.nodes[victim], allow_graceful=False)
    return victim, worker, (busy["job"], busy["shard"]), time.time()


def test_a_node_removed_mid_run_is_replaced_elsewhere_without_counting_a_restart(
    tmp_path: Path, demo_models, local_baseline, make_cluster
) -> None:
    sim = make_cluster({"a": 2, "b": 2, "c": 2})  # one actor per node, one spare CPU on each
    out = tmp_path / "run"
    # slow (the first actors only), so that the run still has shards when the new actor is up
    env = sim.env(demo_models.root, {"sleep_per_batch_s": 1.5})
    # --max-restarts 0: a restart that counted would retire the worker instead of replacing it
    proc = helpers.start_cli(ray_run(sim, out, "--devices", "auto", "--max-restarts", "0"), env)
    try:
        victim, worker, busy, _ = _remove_node_while_busy(sim, out, proc)
        _, stderr = proc.communicate(timeout=300)
    finally:
        helpers.kill_tree(proc)
    assert proc.returncode == 0, stderr
    assert helpers.outputs(out, helpers.SAMPLE_JOBS) == local_baseline
    assert sim.ids[victim] not in sim.live_node_ids()
    ev = helpers.events(out)
    crashed = [e for e in ev if e["type"] == "worker_state" and e["state"] == "crashed"]
    assert [(e["worker"], e["reason"].split(" (")[0]) for e in crashed] == [(worker, "node lost")]
    assert sim.ids[victim][:12] in crashed[0]["reason"]
    assert any(
        e["type"] == "worker_state"
        and e["state"] == "restarting"
        and e["worker"] == worker
        and e["generation"] == 1
        for e in ev
    )
    requeued = {(e["job"], e["shard"]) for e in ev if e["type"] == "shard_requeued"}
    assert busy in requeued and all(
        "node lost" in e["reason"] for e in ev if e["type"] == "shard_requeued"
    )
    # the new actor runs on a node that is still there
    placed = actor_nodes(ev)
    assert placed[(worker, 0)] == sim.ids[victim]
    assert placed[(worker, 1)] in {sim.ids[n] for n in "abc" if n != victim}
    assert not [e for e in ev if e["type"] == "error"]  # nothing retired, nothing failed
    done = {(e["job"], e["shard"]) for e in ev if e["type"] == "shard_done"}
    assert sorted(done) == helpers.SAMPLE_SHARDS


def test_a_lost_node_without_room_elsewhere_leaves_the_run_to_the_other_nodes(
    tmp_path: Path, demo_models, local_baseline, make_cluster
) -> None:
    sim = make_cluster({"a": 1, "b": 1, "c": 1})  # no spare CPU: the replacement cannot start
    out = tmp_path / "run"
    # slow enough that the others still work when the replacement has waited --hang-timeout
    env = sim.env(demo_models.root, {"sleep_per_batch_s": 2.0})
    args = ray_run(sim, out, "--devices", "auto", "--hang-timeout", "10")
    proc = helpers.start_cli(args, env)
    try:
        _, worker, busy, removed = _remove_node_while_busy(sim, out, proc)
        waiting = helpers.wait_for_event(  # the replacement's: on a loaded machine the first
            out,  # actor may have been slow to start too, and said so, before the node went
            lambda e: (
                e["type"] == "warning"
                and e.get("worker") == worker
                and e["ts"] >= removed
                and "waiting for a place to run" in e["message"]
            ),
            timeout=180,
            proc=proc,
        )
        _, stderr = proc.communicate(timeout=300)
    finally:
        helpers.kill_tree(proc)
    assert proc.returncode == 0, stderr
    assert helpers.outputs(out, helpers.SAMPLE_JOBS) == local_baseline
    assert waiting["worker"] == worker and waiting["ts"] >= removed
    assert "the run goes on with the other workers" in waiting["message"]
    ev = helpers.events(out)
    # the replacement never started, so it never held a shard: this worker's requeues are the
    # lost node's alone (on a machine loaded far past CI's, another worker may also miss its
    # 10 s heartbeat and be killed and requeued as hung: that is --hang-timeout at work)
    assert (worker, 1) not in actor_nodes(ev)
    requeued = [e for e in ev if e["type"] == "shard_requeued"]
    assert busy in {(e["job"], e["shard"]) for e in requeued}
    mine = [e["reason"] for e in requeued if e["reason"].startswith(f"worker {worker} ")]
    assert mine and all("node lost" in reason for reason in mine), mine
    late = [e for e in ev if e["type"] == "shard_done" and e["ts"] > removed]
    assert {e["worker"] for e in late} <= {w for w in range(3) if w != worker} and late
    assert not [e for e in ev if e["type"] == "error"]


# -- a node that does not share --out -----------------------------------------------------------
def _unshare_prefix() -> list[str] | None:
    """A command prefix that runs a command in its own mount namespace, or None."""
    for prefix in (
        ["unshare", "--mount", "--propagation", "private"],
        ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"],
    ):
        if not shutil.which(prefix[0]):
            return None
        with tempfile.TemporaryDirectory() as d:
            probe = subprocess.run(
                [*prefix, "sh", "-c", f"mount -t tmpfs vt-probe {d}"],
                capture_output=True,
                timeout=30,
            )
        if probe.returncode == 0:
            return prefix
    return None


@pytest.mark.parametrize(
    ("view", "mount", "expected"),
    [
        (
            "hidden",
            "mount -t tmpfs vt-other {d}",
            "is not the orchestrator's: --out must be on a filesystem",
        ),
        (
            "read-only",
            "mount --bind {d} {d} && mount -o remount,bind,ro {d}",
            "cannot write the run directory",
        ),
    ],
    ids=["hidden", "read-only"],
)
def test_a_node_that_does_not_share_the_run_directory_stops_the_run_clearly(
    tmp_path: Path, demo_models, make_cluster, view: str, mount: str, expected: str
) -> None:
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("no mount namespaces here (unshare): cannot give one node its own --out")
    shared = tmp_path / "shared"
    shared.mkdir()
    sim = make_cluster({"head": 0})  # the head runs no actor: the only CPUs are on `other`
    ray_bin = Path(sys.executable).with_name("ray")
    node_env = {**sim.env(demo_models.root), "RAY_AUTH_MODE": "disabled"}
    command = (
        f"{mount.format(d=shared)} && exec {ray_bin} start --address={sim.address} "
        f"--num-cpus=1 --resources='{{\"vt_node_other\": 1}}' --block"
    )
    node = subprocess.Popen(
        [*prefix, "sh", "-c", command],
        env=node_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while len(sim.live_node_ids()) < 2:
            assert node.poll() is None and time.time() < deadline, "the other node did not join"
            time.sleep(0.5)
        other = (sim.live_node_ids() - set(sim.ids.values())).pop()
        out = shared / "run"
        r = helpers.cli(
            ray_run(sim, out, "--devices", "auto"), sim.env(demo_models.root), timeout=300
        )
    finally:
        os.killpg(node.pid, signal.SIGTERM)  # `ray start --block` stops its node
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
    assert r.returncode == 2, r.stderr  # a setting to fix, before any actor started
    last = r.stderr.strip().splitlines()[-1]
    assert expected in last and str(out) in last and other[:12] in last, (view, last)
    assert "Traceback" not in r.stderr
    assert not (out / "shards").exists() or not list((out / "shards").rglob("*.tsv"))


# -- security: the cluster a run starts for itself ----------------------------------------------
def _listening(pids: set[int]) -> list[str]:
    """The addresses the given processes listen on (TCP)."""
    found = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return bool((getattr(addr, "ipv4_mapped", None) or addr).is_loopback)


PROBE = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
except Exception as exc:
    print("REFUSED", type(exc).__name__, flush=True)
    sys.exit(3)
print("CONNECTED", len(ray.nodes()), flush=True)
"""


def _probe(address: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    """A second driver on this machine trying to join ``address``. Like the run, it keeps a
    loopback address as given (Ray's single-machine mode); Ray's connect timeout is shortened."""
    probe_env = {
        **env,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_py_gcs_connect_timeout_s": "8",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE, address],
        env=probe_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cluster_a_run_starts_listens_on_loopback_only_with_token_auth(
    tmp_path: Path, demo_models, local_baseline, ray_tmp: Path
) -> None:
    out = tmp_path / "run"
    # slow: the run must outlast the refused client (Ray gives up on it after about 20 s)
    env = helpers.cli_env(demo_models.root, {"sleep_per_batch_s": 1.0})
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        env.pop(name, None)  # Ray's defaults, as a user who configured nothing gets them
    env["RAY_TMPDIR"] = str(ray_tmp)  # no other Ray on this machine is found and joined
    args = helpers.sample_run(out, "--backend", "ray", "--devices", "cpu:1")
    proc = helpers.start_cli(args, env)
    try:
        helpers.wait_for_event(out, lambda e: e["type"] == "progress", timeout=180, proc=proc)
        tree = {proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))}
        listening = _listening(tree)
        log = (out / "logs" / "ray-driver.log").read_text()
        address = re.search(r"cluster at (\S+) \(started for this run\)", log)
        assert address, log
        accepted = _probe(address.group(1), env, RAY_AUTH_MODE="token")
        refused = _probe(address.group(1), env, RAY_AUTH_MODE="disabled")
        running = proc.poll() is None  # the refusal came from the live cluster
        _, stderr = proc.communicate(timeout=300)
    finally:
        helpers.kill_tree(proc)
    assert proc.returncode == 0, stderr
    # the GCS, the raylet, the actor and the driver each listen; all of them on loopback only
    assert len(listening) >= 4 and all(_is_loopback(ip) for ip in listening), listening
    assert address.group(1).startswith("127.0.0.1:")
    assert "token authentication on" in log
    # a client with the token (this user's ~/.ray/auth_token) gets in; one without is refused
    assert accepted.returncode == 0 and "CONNECTED 1" in accepted.stdout, accepted.stderr
    assert running and refused.returncode == 3 and "REFUSED" in refused.stdout, refused.stderr
    assert "Authentication token is missing or incorrect" in refused.stderr
    assert "token authentication" not in stderr  # nothing to warn about
    assert not [e for e in helpers.events(out) if e["type"] == "warning"]
    assert helpers.outputs(out, helpers.SAMPLE_JOBS) == local_baseline
    helpers.assert_no_live_processes(tree - {proc.pid}, timeout=60)  # the cluster went with the run
