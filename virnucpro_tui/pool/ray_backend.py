"""The Ray backend: one persistent actor per GPU of a Ray cluster, running the local pool's
``Worker`` (docs/architecture.md#the-pool-one-supervisor-two-transports). See docs/ray.md.

Transport. Each actor is a threaded actor with four single-thread concurrency groups:

- ``run``: one long call, ``run()``, that starts the ``Worker`` (torch set-up, heartbeat
  thread) and serves shards from the actor's ``ShardInbox`` until told to stop. Its result is
  the worker's exit code; if the actor dies, it fails. It plays the part of the process.
- ``mailbox``: ``submit(shard)``, ``recall()`` and ``stop()``, kept in order (one thread), like
  the local worker's pipe.
- ``events``: ``events(wait_s)``, a long poll. The ``Worker`` puts its events (heartbeats
  included) into a buffer in the actor; the transport keeps one such call outstanding per actor
  and re-issues it as soon as it returns, so events reach the orchestrator within a few ms.
- ``control``: ``clear_cache(reason)`` and ``info()``, never queued behind the others.

The queue, dispatch, retries, restart limits, pause and the events the supervisor emits are the
pool's own (``pool.py``); this module is only a ``Backend`` and its ``ActorTransport``. A dead
actor (its ``run`` or ``events`` call fails) or a hung one (killed by the pool) is replaced by a
new actor on the node its slot is pinned to; one that died with its node (``host_lost``) is
replaced wherever Ray finds room. An actor is ``ready`` once it has reported in.

Placement, the shared run directory and security: docs/ray.md.

Ray is optional: without it ``ray_backend`` raises an ``InputError`` saying how to install it,
and this module imports without it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import msgspec

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.errors import InputError, RunDirError, VirnucproError
from virnucpro_tui.pool.devices import DeviceSlot, nvml_gpus, resolve_devices
from virnucpro_tui.pool.events import Event, WorkerStateChanged
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.transport import (
    ClearCache,
    Command,
    Recall,
    Recalled,
    RunShard,
    Stop,
    WorkerMessage,
)
from virnucpro_tui.pool.worker import ShardInbox, Worker, redirect_output
from virnucpro_tui.pool.worker_config import WorkerConfig, worker_environment

INSTALL_HINT = (
    "--backend ray needs Ray, an optional extra: pip install 'virnucpro-tui[ray]' "
    "(or pip install ray), or use --backend local"
)
CONCURRENCY_GROUPS = {"run": 1, "mailbox": 1, "events": 1, "control": 1}
EVENT_WAIT_S = 2.0  # longest an events() call waits for the first event
EVENT_SETTLE_S = 0.02  # once one arrives, how long to let a burst gather
BUFFER_LIMIT = 20_000  # past this, an actor drops its telemetry until it is drained
FORWARDED_ENV_PREFIX = "VIRNUCPRO_TUI_"  # e.g. fault injection reaches the actors too
MARKER_WAIT_S = 15.0  # how long a node looks for the run's marker (NFS may cache its absence)
CHECK_TIMEOUT_S = MARKER_WAIT_S + 60  # for every node's check to answer
LOOPBACK = "127.0.0.1"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ``InputError`` (exit 2) on how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


# == inside the actor =========================================================================
class EventBuffer:
    """The actor's outbox: the ``Worker`` puts events in, ``drain`` long-polls them out.

    The pool asks again only once it has a reply, so a new ``drain`` call acknowledges
    everything the previous ones returned; ``wait_delivered`` waits for that."""

    def __init__(self, limit: int = BUFFER_LIMIT) -> None:
        self.limit = limit
        self._events: list[WorkerMessage] = []
        self._cv = threading.Condition()
        self._taken = 0  # non-empty batches handed out
        self._acked = 0  # of those, how many the pool has confirmed by asking again

    def put(self, event: WorkerMessage) -> None:
        with self._cv:
            if len(self._events) >= self.limit and isinstance(event, Event) and event.TELEMETRY:
                return  # nobody is draining: keep what matters, drop telemetry
            self._events.append(event)
            self._cv.notify_all()

    def drain(self, wait_s: float, settle_s: float = EVENT_SETTLE_S) -> list[WorkerMessage]:
        with self._cv:
            self._acked = self._taken
            self._cv.notify_all()
            if not self._cv.wait_for(lambda: bool(self._events), timeout=wait_s):
                return []
        if settle_s:
            time.sleep(settle_s)
        with self._cv:
            out, self._events = self._events, []
            self._taken += 1
        return out

    def wait_delivered(self, timeout: float) -> bool:
        """Wait until every event so far has reached the pool (or ``timeout``)."""
        with self._cv:
            return self._cv.wait_for(
                lambda: not self._events and self._acked == self._taken, timeout=timeout
            )


def actor_environment(cfg: WorkerConfig) -> dict[str, str]:
    """The variables an actor process needs before torch is imported (its runtime env).

    A GPU actor's ``CUDA_VISIBLE_DEVICES`` is Ray's to set (``num_gpus=1``); a CPU actor's is
    empty. ``VIRNUCPRO_TUI_*`` variables of the driver are passed on."""
    env = worker_environment(cfg)
    if cfg.slot.kind == "cuda":
        env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update({k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)})
    return env


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


class WorkerActor:
    """The body of a Ray actor: the local pool's ``Worker`` behind Ray method calls. Its
    ``worker_state`` events name the Ray node (``node``) and host (``host``) it runs on."""

    def __init__(self, cfg: WorkerConfig) -> None:
        redirect_output(cfg.log_path)  # nothing from a worker reaches a terminal
        os.environ.update(actor_environment(cfg))  # already set by the runtime env
        with contextlib.suppress(ValueError):  # the orchestrator decides when we stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        import ray

        self.host = socket.gethostname()
        self.node_id = ray.get_runtime_context().get_node_id()
        cfg = replace(cfg, slot=placed_slot(cfg.slot, list(ray.get_gpu_ids()), self.host))
        print(
            f"worker {cfg.slot.worker} generation {cfg.generation} pid {os.getpid()} on {cfg.slot.label} "
            f"(Ray actor, node {self.node_id[:12]})",
            flush=True,
        )
        self.outbox = EventBuffer()
        # a shard starts only once the events before it have reached the pool (or after a
        # second), so a shard_done is not lost when the next shard kills the actor
        self.inbox = ShardInbox(before_take=lambda: self.outbox.wait_delivered(1.0))
        self.worker = Worker(cfg, self._send)

    def _send(self, message: WorkerMessage) -> None:
        """Out to the pool; a ``worker_state`` names the node and host it comes from."""
        if isinstance(message, WorkerStateChanged):
            message = msgspec.structs.replace(message, node=self.node_id, host=self.host)
        self.outbox.put(message)

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "node_id": self.node_id,
            "host": self.host,
            "device": self.worker.cfg.slot.label,
        }

    def run(self) -> int:
        self.worker.start()
        code = self.worker.serve(self.inbox)
        print(f"worker loop ended with code {code}", flush=True)
        return code

    def submit(self, shard: Shard) -> None:
        self.inbox.put(shard)

    def recall(self) -> Recalled:
        return self.worker.recall(self.inbox)

    def stop(self) -> None:
        self.inbox.stop()

    def clear_cache(self, reason: str) -> None:
        if self.worker.engine is not None:  # not before the worker has started
            self.worker.clear_cache(reason)

    def events(self, wait_s: float) -> list[WorkerMessage]:
        return self.outbox.drain(wait_s)


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


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


# == the cluster ==============================================================================
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


def describe_death(exc: BaseException) -> str:
    """A short reason for a dead actor, from Ray's long error text."""
    text = " ".join(str(exc).split())
    lost = re.search(r"its node has died\. Node Id: (\w+)(?:.*?terminated (.+?)(?:\.\s|$))?", text)
    if lost:
        how = f": terminated {lost.group(2).rstrip('.')}" if lost.group(2) else ""
        return f"node lost (Ray node {lost.group(1)[:12]}{how})"
    cause = re.search(r"The actor is dead because (.+?)\.(?:\s|$)", text)
    reason = cause.group(1).replace("`", "") if cause else "unexpectedly"
    exit_type = re.search(r"Worker exit type: (\w+)", text)
    detail = re.search(r"Worker exit detail: (.+?)\.(?:\s|$)", text)
    extra = ": ".join(x.group(1) for x in (exit_type, detail) if x)
    return f"actor died ({reason}{'; ' + extra if extra else ''})"


def died_with_node(exc: BaseException) -> bool:
    """Whether an actor died because its node died (lost, drained or preempted)."""
    return bool(getattr(exc, "preempted", False)) or "its node has died" in str(exc)


def _driver_messages_to(path: Path) -> None:
    """Send Ray's driver-side notices ('(raylet) A worker died ...') to ``path``, not stdout.

    Ray prints them from a listener thread through ``print_to_stdstream`` even with
    ``log_to_driver=False``; on stdout they would break the dashboard and ``--events-jsonl -``.
    Best effort: a Ray without that hook just keeps printing them."""
    try:
        import ray._private.worker as ray_worker
    except ImportError:
        return
    if not hasattr(ray_worker, "print_to_stdstream"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:  # noqa: ARG001
        with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as fh:
            for line in data.get("lines", []):
                fh.write(
                    f"{time.strftime('%Y-%m-%dT%H:%M:%S')} ({data.get('pid', 'ray')}) {line}\n"
                )

    ray_worker.print_to_stdstream = to_log


# == the driver side ============================================================================
class ActorTransport:
    """One worker actor, seen from the driver: its mailbox calls and the calls to watch."""

    def __init__(self, ray: Any, actor: Any, local_node: str) -> None:
        self.ray = ray
        self.actor = actor
        self.local_node = local_node
        self.info_ref: Any = _call(actor, "info", "control")
        self.run_ref: Any = _call(actor, "run", "run")
        self.events_ref: Any = _call(actor, "events", "events", EVENT_WAIT_S)
        self.recall_ref: Any = None
        self._exit_reason: str | None = None
        self.reported = False  # it has sent something: placed, and its worker runs
        self.node_lost = False  # it died with its node

    @property
    def alive(self) -> bool:
        return self.actor is not None and self._exit_reason is None

    @property
    def ready(self) -> bool:
        return self.reported

    @property
    def host_lost(self) -> bool:
        return self.node_lost

    def watched(self) -> list[Any]:
        """The outstanding calls whose completion means news."""
        return [r for r in (self.events_ref, self.recall_ref, self.run_ref) if r is not None]

    def send(self, command: Command) -> bool:
        if not self.alive:
            return False
        if isinstance(command, RunShard):
            _call(self.actor, "submit", "mailbox", command.shard)
        elif isinstance(command, Recall):
            self.recall_ref = _call(self.actor, "recall", "mailbox")
        elif isinstance(command, Stop):
            _call(self.actor, "stop", "mailbox")
        elif isinstance(command, ClearCache):
            _call(self.actor, "clear_cache", "control", command.reason)
        return True

    def receive(self) -> list[WorkerMessage]:
        refs = self.watched() if self.alive else []
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        messages: list[WorkerMessage] = []
        if self.events_ref is not None and self.events_ref in ready:  # its events first
            messages += self._take_events()
        if self.recall_ref is not None and self.recall_ref in ready and self.alive:
            messages += self._take_recall()
        if self.run_ref is not None and self.run_ref in ready and self.alive:
            messages += self._take_exit()
        self.reported = self.reported or bool(messages)
        return messages

    def _take_events(self) -> list[WorkerMessage]:
        ray_exc = self.ray.exceptions
        unavailable = getattr(ray_exc, "ActorUnavailableError", ())  # Ray >= 2.30
        ref, self.events_ref = self.events_ref, None
        try:
            batch: list[WorkerMessage] = self.ray.get(ref)
        except unavailable:
            time.sleep(0.1)  # transient (network, node under load or going): ask again soon;
            batch = []  # Ray reports the death if it lasts, else the heartbeat timeout decides
        except ray_exc.RayActorError as exc:
            self._died(exc)
            return []
        if self.alive:
            self.events_ref = _call(self.actor, "events", "events", EVENT_WAIT_S)
        return batch

    def _take_recall(self) -> list[WorkerMessage]:
        ref, self.recall_ref = self.recall_ref, None
        try:
            return [self.ray.get(ref)]
        except self.ray.exceptions.RayError:
            return []  # the actor is dying: its exit says why

    def _take_exit(self) -> list[WorkerMessage]:
        """The worker loop ended: deliver its last events, then let the actor go."""
        ray_exc = self.ray.exceptions
        try:
            reason = f"exited with code {self.ray.get(self.run_ref)}"
        except getattr(ray_exc, "ActorUnavailableError", ()):
            self.run_ref = None  # unreachable, maybe with its node: its events call will tell
            return []
        except ray_exc.RayActorError as exc:
            self._died(exc)
            return []
        except ray_exc.RayError as exc:
            reason = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
        messages = self._drain()
        self._exit_reason = self._exit_reason or reason
        self._terminate()
        return messages

    def _died(self, exc: BaseException) -> None:
        self._exit_reason = describe_death(exc)
        self.node_lost = died_with_node(exc) or not self._node_alive()

    def _node_alive(self) -> bool:
        """Whether the node the actor ran on is still in the cluster (True when unknown)."""
        try:
            node_id = self.ray.get(self.info_ref, timeout=0)["node_id"]
            return any(n["NodeID"] == node_id and n["Alive"] for n in self.ray.nodes())
        except Exception:  # noqa: BLE001 - it never answered, or the GCS did not: assume so
            return True

    def _drain(self) -> list[WorkerMessage]:
        last = _call(self.actor, "events", "events", 0.0)
        refs = [r for r in (self.events_ref, last) if r is not None]
        self.events_ref = None
        messages: list[WorkerMessage] = []
        for ref in refs:
            try:
                messages += self.ray.get(ref, timeout=EVENT_WAIT_S + 3)
            except Exception:  # noqa: BLE001 - the actor is going anyway
                continue
        return messages

    def exit_reason(self) -> str | None:
        return self._exit_reason

    def kill(self) -> None:
        """SIGKILL the actor's process (a stopped process ignores Ray), then the actor."""
        self._reap()
        self._terminate()

    def close(self) -> None:
        self._terminate()

    def _terminate(self) -> None:
        if self.actor is None:
            return
        with contextlib.suppress(Exception):
            self.ray.kill(self.actor, no_restart=True)
        if self._exit_reason is None:
            self._exit_reason = "stopped"
        self.run_ref = self.events_ref = self.recall_ref = None

    def _reap(self) -> None:
        try:  # one that never reported in may never have been placed: do not wait for it
            info = self.ray.get(self.info_ref, timeout=2 if self.reported else 0)
        except Exception:  # noqa: BLE001 - it never answered: nothing to reap
            return
        if info["node_id"] == self.local_node:
            _sigkill(info["pid"])
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(info["node_id"], soft=False)
        self.ray.remote(num_cpus=0, scheduling_strategy=strategy)(_sigkill).remote(info["pid"])


def _call(actor: Any, method: str, group: str, *args: Any) -> Any:
    return getattr(actor, method).options(concurrency_group=group).remote(*args)


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
                with _loopback_only():
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
            _driver_messages_to(layout.ray_driver_log)
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
        self._cpu_share = _cpu_fraction(cpus / len(slots)) if slots else 1.0

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
        return _cpu_fraction(per_actor), max(1, int(per_actor))

    def wait(self, transports: Sequence[ActorTransport], timeout: float) -> None:
        refs = [r for t in transports for r in t.watched()]
        if refs:
            self.ray.wait(refs, num_returns=1, timeout=timeout)
        else:
            time.sleep(min(timeout, 0.05))


def _cpu_fraction(cpus: float) -> float:
    """At most one CPU, in thousandths (what Ray accepts), never zero."""
    return max(0.001, min(1.0, int(cpus * 1000) / 1000))


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


def starts_private_cluster(address: str | None) -> bool:
    """Whether ``ray.init(address)`` would start a new cluster instead of joining one: Ray's
    own rule ($RAY_ADDRESS, then the last ``ray start`` on this machine), read without side
    effects. False when this Ray does not tell."""
    if address == "local":
        return True
    if address is not None:
        return False
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return False
    try:
        return canonicalize_bootstrap_address(None) is None  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - let ray.init decide, and report, as it would
        return False


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Let the cluster being started keep 127.0.0.1 as its node address.

    On Linux, Ray swaps a loopback node address for the machine's routable one, and binds its
    servers to every interface unless the node address is 127.0.0.1; its single-machine mode
    (the default on macOS and Windows) keeps it. That mode is a module switch read while the
    node starts; it is restored at once. Without the switch the cluster listens as Ray
    chooses, and the run says so (``security_notices``)."""
    try:
        import ray._private.ray_constants as constants
    except ImportError:
        yield
        return
    saved = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if saved is None:
        yield
        return
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


def token_auth_enabled() -> bool | None:
    """Whether this driver authenticates with a token (None: this Ray has no token auth)."""
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationMode,
            get_authentication_mode,
        )
    except ImportError:
        return None
    return bool(get_authentication_mode() == AuthenticationMode.TOKEN)


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
