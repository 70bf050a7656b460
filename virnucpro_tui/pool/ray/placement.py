"""Placement on a Ray cluster: its live nodes, the worker slots for ``--devices`` and the node
each is pinned to, a GPU actor's slot as Ray placed it, and the check each node runs that it
sees and can write the run directory (docs/ray.md)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from dataclasses import dataclass, replace
from typing import Any

from virnucpro_tui.errors import InputError
from virnucpro_tui.pool.devices import DeviceSlot, nvml_gpus, resolve_devices
from virnucpro_tui.pool.layout import RunLayout

MARKER_WAIT_S = 15.0  # how long a node looks for the run's marker (NFS may cache its absence)
CHECK_TIMEOUT_S = MARKER_WAIT_S + 60  # for every node's check to answer


@dataclass(frozen=True)
class ClusterNode:
    node_id: str
    host: str
    cpus: float
    gpus: int
    accelerator: str | None = None


def cluster_nodes(ray: Any) -> list[ClusterNode]:
    """The cluster's live nodes and their CPUs and GPUs: the head first, then by host and id."""
    nodes = []
    for n in ray.nodes():
        if not n.get("Alive", n.get("alive")):
            continue
        res = n.get("Resources", {})
        accel = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
        host = n.get("NodeManagerHostname") or n.get("NodeManagerAddress") or n["NodeID"][:12]
        node = ClusterNode(
            n["NodeID"], host, float(res.get("CPU", 0)), int(res.get("GPU", 0)), accel
        )
        nodes.append(("node:__internal_head__" not in res, node.host, node.node_id, node))
    return [node for *_, node in sorted(nodes, key=lambda item: item[:3])]


def slots_for_cluster(
    spec: str, nodes: list[ClusterNode]
) -> tuple[list[DeviceSlot], dict[int, str]]:
    """Worker slots for ``--devices`` on a cluster, and the node each slot is pinned to.

    ``auto``: one worker per GPU in the cluster (node by node); on a cluster without GPUs, one
    CPU worker per node that has CPUs. ``cpu:N``: N CPU workers dealt round-robin over the
    nodes that have CPUs, in ``cluster_nodes`` order. GPU indices name local GPUs and are
    refused."""
    spec = spec.strip().lower()
    if spec == "auto":
        slots: list[DeviceSlot] = []
        where: dict[int, str] = {}
        for node in nodes:
            for i in range(node.gpus):
                where[len(slots)] = node.node_id
                slots.append(
                    DeviceSlot(
                        len(slots), "cuda", i, None, f"{node.accelerator or 'GPU'} @ {node.host}"
                    )
                )
        if slots:
            return slots, where
        return _cpu_slots(max(1, sum(n.cpus > 0 for n in nodes)), nodes)
    if re.fullmatch(r"cpu(?::\d+)?", spec):
        return _cpu_slots(len(resolve_devices(spec, gpus=[])), nodes)
    raise InputError(
        f"--devices {spec}: with --backend ray the workers are the cluster's GPUs; "
        "use auto (one actor per GPU in the cluster) or cpu:N (N CPU actors)"
    )


def _cpu_slots(count: int, nodes: list[ClusterNode]) -> tuple[list[DeviceSlot], dict[int, str]]:
    hosts = [n for n in nodes if n.cpus > 0]
    if not hosts:
        return [DeviceSlot(w, "cpu") for w in range(count)], {}
    placed = [hosts[w % len(hosts)] for w in range(count)]
    return (
        [DeviceSlot(w, "cpu", name=f"CPU @ {node.host}") for w, node in enumerate(placed)],
        {w: node.node_id for w, node in enumerate(placed)},
    )


def cpu_fraction(cpus: float) -> float:
    """At most one CPU, in thousandths (what Ray accepts), never zero."""
    return max(0.001, min(1.0, int(cpus * 1000) / 1000))


def placed_slot(slot: DeviceSlot, gpu_ids: list[Any], host: str) -> DeviceSlot:
    """The slot as placed by Ray: the physical GPU (index, UUID, model) it got, and its host."""
    if slot.kind != "cuda":
        return slot
    gpus = nvml_gpus()
    for gid in gpu_ids[:1]:
        text = str(gid)
        for g in gpus:
            if (text.isdigit() and g.index == int(text)) or (
                not text.isdigit() and g.uuid.startswith(text)
            ):
                return DeviceSlot(slot.worker, "cuda", g.index, g.uuid, f"{g.name} @ {host}")
    return replace(slot, uuid=None, name=f"{slot.name.split(' @ ')[0]} @ {host}")


def run_dir_problem(
    layout: RunLayout, token: str, where: str, wait_s: float = MARKER_WAIT_S
) -> str | None:
    """Why a node cannot use the run directory (None: it can).

    The orchestrator writes ``token`` to the run's marker before it starts the actors; a node
    that cannot read it there sees another directory (``--out`` not on a filesystem every node
    shares), and one that cannot write there would lose its results."""
    run_dir = layout.root
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if layout.ray_run_marker.read_text().strip() == token:
                break
        if time.monotonic() >= deadline:
            return (
                f"the run directory {run_dir} on Ray node {where} is not the orchestrator's: --out "
                "must be on a filesystem that every node mounts at the same path "
                "(docs/ray.md#shared-filesystem-required-for-more-than-one-node)"
            )
        time.sleep(0.5)
    probe = layout.logs / f".write-test-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return (
            f"cannot write the run directory {run_dir} on Ray node {where} "
            f"({exc.strerror or exc}): every node must be able to write --out"
        )
    return None


def check_this_node(layout: RunLayout, token: str) -> str | None:
    """``run_dir_problem`` as a Ray task runs it on a node."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return run_dir_problem(layout, token, f"{socket.gethostname()} ({node[:12]})")
