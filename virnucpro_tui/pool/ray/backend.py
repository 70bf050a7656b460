"""The driver side of the Ray backend: joining or starting the cluster, placing the worker
actors, checking capacity and the run directory on every node, and the security notices
(docs/ray.md)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from virnucpro_tui.errors import InputError, RunDirError, VirnucproError
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.ray.actor import CONCURRENCY_GROUPS, WorkerActor, actor_environment
from virnucpro_tui.pool.ray.compat import (
    driver_messages_to,
    loopback_only,
    starts_private_cluster,
    token_auth_enabled,
)
from virnucpro_tui.pool.ray.placement import (
    CHECK_TIMEOUT_S,
    ClusterNode,
    check_this_node,
    cluster_nodes,
    cpu_fraction,
    slots_for_cluster,
)
from virnucpro_tui.pool.ray.transport import ActorTransport
from virnucpro_tui.pool.worker_config import WorkerConfig

INSTALL_HINT = (
    "--backend ray needs Ray, an optional extra: pip install 'virnucpro-tui[ray]' "
    "(or pip install ray), or use --backend local"
)
LOOPBACK = "127.0.0.1"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ``InputError`` (exit 2) on how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


class RayBackend:
    """Worker actors on a Ray cluster: one per cluster GPU (``--devices auto``), one per node
    of a cluster without GPUs, or ``cpu:N`` spread over the nodes (docs/ray.md)."""

    name = "ray"

    def __init__(
        self, address: str | None = None, init_options: dict[str, Any] | None = None
    ) -> None:
        self.address = address
        self.init_options = init_options or {}
        self.ray = import_ray()
        self._placement: dict[int, str] = {}  # worker -> the node it is pinned to
        self._nodes: dict[str, ClusterNode] = {}
        self._actor_class: Any = None
        self._cpu_share = 1.0
        self._local_node = ""
        self._notices: list[str] = []  # security warnings, given to the first pool only
        self._description = ""  # the cluster in one line, for the driver log

    def connect(self) -> Any:
        """Join the cluster at ``address`` or $RAY_ADDRESS, or the one last started with
        ``ray start`` on this machine; with none of them, start a private one for the run that
        listens on loopback only, with token authentication (docs/ray.md#security)."""
        ray = self.ray
        if ray.is_initialized():
            return ray
        private = starts_private_cluster(self.address)
        options = {
            "log_to_driver": False,
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            **self.init_options,
        }
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        try:
            if private:
                with loopback_only():
                    ray.init(address="local", _node_ip_address=LOOPBACK, **options)
            else:
                ray.init(address=self.address, **options)
        except ConnectionError as exc:
            raise InputError(
                f"--ray-address {self.address}: cannot reach a Ray cluster ({_one_line(exc)})"
            ) from None
        except Exception as exc:  # noqa: BLE001 - one line for the user, whatever Ray raised
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise VirnucproError(
                f"cannot start or join {where}: {type(exc).__name__}: {_one_line(exc)}"
            ) from None
        finally:
            if previous is not None:  # ray.init sets its own; keep the front end's SIGTERM handling
                signal.signal(signal.SIGTERM, previous)
        gcs = ray.get_runtime_context().gcs_address
        token = token_auth_enabled()
        self._notices = security_notices(gcs, private, token)
        self._description = (
            f"Ray {ray.__version__} cluster at {gcs} "
            f"({'started for this run' if private else 'joined'}), "
            f"token authentication {'on' if token else 'off'}"
        )
        return ray

    def now(self) -> float:
        return time.monotonic()

    def resolve_slots(self, spec: str) -> list[DeviceSlot]:
        slots, self._placement = slots_for_cluster(spec, cluster_nodes(self.connect()))
        return slots

    def open(self, slots: Sequence[DeviceSlot], layout: RunLayout) -> list[str]:
        ray = self.connect()
        self._nodes = {n.node_id: n for n in cluster_nodes(ray)}
        self._placement = {
            s.worker: self._placement[s.worker] for s in slots if s.worker in self._placement
        }
        self._check_capacity(slots, ray.cluster_resources())
        self._actor_class = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(WorkerActor)
        self._local_node = ray.get_runtime_context().get_node_id()
        if slots:
            driver_messages_to(layout.ray_driver_log)
            _log_line(layout.ray_driver_log, self._description)
            self._check_run_dir(_absolute(layout), slots)
        notices, self._notices = self._notices, []
        return notices

    def _check_capacity(self, slots: Sequence[DeviceSlot], resources: dict[str, float]) -> None:
        gpus_needed = sum(s.kind == "cuda" for s in slots)
        gpus = resources.get("GPU", 0.0)
        if gpus_needed > gpus:
            raise InputError(
                f"the Ray cluster has {gpus:g} GPUs, and {gpus_needed} GPU workers were asked "
                "for; use --devices auto (one per GPU in the cluster) or cpu:N"
            )
        cpus = resources.get("CPU", 0.0)
        if slots and cpus <= 0:
            raise InputError("the Ray cluster has no CPUs to place worker actors on")
        # one CPU per actor where the cluster has them; a fair share of a small one otherwise
        self._cpu_share = cpu_fraction(cpus / len(slots)) if slots else 1.0

    def _check_run_dir(self, layout: RunLayout, slots: Sequence[DeviceSlot]) -> None:
        """Before any actor starts, each node that will run one checks that it sees and can
        write the orchestrator's run directory (a fresh token in ``layout.ray_run_marker``)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = uuid.uuid4().hex
        layout.ray_run_marker.parent.mkdir(parents=True, exist_ok=True)
        layout.ray_run_marker.write_text(token + "\n")
        pinned = {self._placement.get(s.worker) for s in slots}
        nodes = pinned - {None} if None not in pinned else set(self._nodes)
        check = self.ray.remote(num_cpus=0, max_retries=0)(check_this_node)
        refs = [
            check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(
                layout, token
            )
            for n in sorted(n for n in nodes if n)
        ]
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=CHECK_TIMEOUT_S)
        for ref in done:  # a node that does not answer (gone, overloaded) is not held against
            problem = None
            with contextlib.suppress(Exception):
                problem = self.ray.get(ref)
            if problem:
                raise RunDirError(problem)

    def spawn(self, config: WorkerConfig) -> ActorTransport:
        config = _portable(config)
        node = self._pinned_node(config.slot.worker)
        cpus, threads = self._actor_cpus(config.slot, node)
        if threads is not None:
            config = replace(config, torch_threads=threads)
        options: dict[str, Any] = {
            "num_cpus": cpus,
            "num_gpus": 1 if config.slot.kind == "cuda" else 0,
            "runtime_env": {"env_vars": actor_environment(config)},
            "max_restarts": 0,
        }
        if node:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        actor = self._actor_class.options(**options).remote(config)
        return ActorTransport(self.ray, actor, self._local_node)

    def _pinned_node(self, worker: int) -> str | None:
        """The node the worker is pinned to, while the cluster has it; once it is gone, the
        worker goes wherever Ray finds room."""
        node = self._placement.get(worker)
        if node and not any(n["NodeID"] == node and n["Alive"] for n in self.ray.nodes()):
            del self._placement[worker]
            return None
        return node

    def _actor_cpus(self, slot: DeviceSlot, node_id: str | None) -> tuple[float, int | None]:
        """The CPUs Ray reserves for the actor, and its torch threads (None: as configured).
        A CPU worker pinned to a node shares that node's CPUs with the others pinned there."""
        node = self._nodes.get(node_id or "")
        if node is None or slot.kind != "cpu":
            return self._cpu_share, None
        per_actor = node.cpus / max(1, sum(n == node_id for n in self._placement.values()))
        return cpu_fraction(per_actor), max(1, int(per_actor))

    def wait(self, transports: Sequence[ActorTransport], timeout: float) -> None:
        refs = [r for t in transports for r in t.watched()]
        if refs:
            self.ray.wait(refs, num_returns=1, timeout=timeout)
        else:
            time.sleep(min(timeout, 0.05))


def _absolute(layout: RunLayout) -> RunLayout:
    return replace(layout, root=layout.root.absolute())


def _portable(config: WorkerConfig) -> WorkerConfig:
    """The config with absolute paths: an actor's working directory is not the driver's."""
    files = replace(
        config.files,
        **{f.name: Path(getattr(config.files, f.name)).absolute() for f in fields(config.files)},
    )
    return replace(config, layout=_absolute(config.layout), files=files)


def _log_line(path: Path, line: str) -> None:
    if not line:
        return
    with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} (driver) {line}\n")


def security_notices(gcs_address: str, private: bool, token: bool | None) -> list[str]:
    """Warnings about how exposed the cluster is (docs/ray.md#security).

    A cluster with token authentication refuses a driver without a token, so a joined cluster
    that accepted this driver without one has none. With a token configured here, whether the
    cluster checks it cannot be seen from the driver: no warning then."""
    if private:
        notes = []
        host = gcs_address.rsplit(":", 1)[0].strip("[]")
        if not _is_loopback(host):
            notes.append(
                f"the Ray cluster started for this run listens on {host}, not on loopback only: "
                "other machines can reach it"
            )
        if not token:
            mode = os.environ.get("RAY_AUTH_MODE")
            why = f"RAY_AUTH_MODE={mode}" if mode else "this Ray version has none"
            notes.append(
                f"the Ray cluster started for this run has no token authentication ({why}): "
                "any local user can run code in it; use Ray >= 2.52 and unset RAY_AUTH_MODE "
                "or set it to token"
            )
        return notes
    if token:
        return []
    return [
        f"the Ray cluster at {gcs_address} has no token authentication (it accepted this run "
        "without a token): anyone who can reach it can run code on it; enable it with "
        "`ray get-auth-token --generate` and RAY_AUTH_MODE=token on every node before "
        "`ray start` and for this command (docs/ray.md#security)"
    ]


def _is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def _one_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def ray_backend(address: str | None = None) -> RayBackend:
    """The backend for ``run --backend ray [--ray-address ADDR]``. Connects now (from the main
    thread: Ray ties a local cluster's processes to the thread that starts it)."""
    backend = RayBackend(address)
    backend.connect()
    return backend
