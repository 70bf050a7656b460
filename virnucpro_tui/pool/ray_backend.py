"""The Ray backend: one persistent actor per GPU of a Ray cluster, running the local pool's
``Worker`` (docs/architecture.md). See docs/ray.md.

Transport. Each actor is a threaded actor with four single-thread concurrency groups:

- ``run``: one long call, ``run()``, that starts the ``Worker`` (torch set-up, heartbeat
  thread) and serves shards from the actor's own task queue until told to stop. Its result is
  the worker's exit code; if the actor dies, it fails. It plays the part of the process.
- ``mailbox``: ``submit(shard)`` and ``stop()``, kept in order (one thread), feed that queue,
  like the local worker's pipe.
- ``events``: ``events(wait_s)``, a long poll. The ``Worker`` puts its events (heartbeats
  included) into a buffer in the actor; the pool keeps one such call outstanding per actor
  and re-issues it as soon as it returns, so events reach the orchestrator within a few ms.
- ``control``: ``clear_cache(reason)`` and ``info()``, never queued behind the others.

The pool subclasses ``PersistentWorkerPool``: the queue, dynamic dispatch (a shard when an
actor has room), retries, restart limits, and the events it emits are the local pool's own;
only the transport differs. A dead actor (its ``run`` or ``events`` call fails) or a hung one
(no event for ``hang_timeout_s``; it is killed) has its shards requeued and is replaced by a
new actor on the same node; one that died with its node is replaced wherever Ray finds room,
and that restart does not count against the restart limit. An actor gets shards only once it
has reported in, so one that waits for a node with room holds none.

Placement, the shared run directory and security: docs/ray.md.

Ray is optional: without it ``ray_pool_factory`` raises an ``InputError`` saying how to
install it, and this module imports without it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import queue
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from virnucpro_tui.core.shards import Shard
from virnucpro_tui.errors import InputError, VirnucproError, WorkerFailure
from virnucpro_tui.pool.devices import DeviceSlot, nvml_gpus, resolve_devices
from virnucpro_tui.pool.events import Event, EventSink, make_event
from virnucpro_tui.pool.pool import PersistentWorkerPool, PoolPolicy, WorkerHandle
from virnucpro_tui.pool.worker import Worker, WorkerConfig, _redirect_output, worker_environment

INSTALL_HINT = (
    "--backend ray needs Ray, an optional extra: pip install 'virnucpro-tui[ray]' "
    "(or pip install ray), or use --backend local"
)
CONCURRENCY_GROUPS = {"run": 1, "mailbox": 1, "events": 1, "control": 1}
EVENT_WAIT_S = 2.0  # longest an events() call waits for the first event
EVENT_SETTLE_S = 0.02  # once one arrives, how long to let a burst gather
BUFFER_LIMIT = 20_000  # past this, an actor drops its telemetry until it is drained
DROPPABLE = frozenset({"heartbeat", "gpu_memory", "progress"})
FORWARDED_ENV_PREFIX = "VIRNUCPRO_TUI_"  # e.g. fault injection reaches the actors too
DRIVER_LOG = "ray-driver.log"
RUN_MARKER = ".ray-run"  # in logs/: a token that tells an actor it sees the orchestrator's --out
MARKER_WAIT_S = 15.0  # how long an actor looks for it (NFS may cache a missing file that long)
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
        self._events: list[Event] = []
        self._cv = threading.Condition()
        self._taken = 0  # non-empty batches handed out
        self._acked = 0  # of those, how many the pool has confirmed by asking again

    def put(self, event: Event) -> None:
        with self._cv:
            if len(self._events) >= self.limit and event.get("type") in DROPPABLE:
                return  # nobody is draining: keep what matters, drop telemetry
            self._events.append(event)
            self._cv.notify_all()

    def drain(self, wait_s: float, settle_s: float = EVENT_SETTLE_S) -> list[Event]:
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


class TaskQueue(queue.Queue):
    """The actor's task queue. A shard starts only once the events before it have reached the
    pool (or after ``flush_s``), so a shard_done is not lost when the next shard kills the
    actor, as with the local worker's pipe."""

    def __init__(self, outbox: EventBuffer, flush_s: float = 1.0) -> None:
        super().__init__()
        self.outbox = outbox
        self.flush_s = flush_s

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)
        self.outbox.wait_delivered(self.flush_s)
        return item


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


def run_dir_problem(
    run_dir: Path, token: str, where: str, wait_s: float = MARKER_WAIT_S
) -> str | None:
    """Why this node cannot use the run directory (None: it can).

    The orchestrator writes ``token`` into ``logs/.ray-run`` before it starts the actors; an
    actor that cannot read it there sees another directory (``--out`` not on a filesystem every
    node shares) and one that cannot write there would lose its results."""
    marker = run_dir / "logs" / RUN_MARKER
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if marker.read_text().strip() == token:
                break
        if time.monotonic() >= deadline:
            return (
                f"the run directory {run_dir} on Ray node {where} is not the orchestrator's: --out "
                "must be on a filesystem that every node mounts at the same path "
                "(docs/ray.md#shared-filesystem-required-for-more-than-one-node)"
            )
        time.sleep(0.5)
    probe = run_dir / "logs" / f".write-test-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return (
            f"cannot write the run directory {run_dir} on Ray node {where} "
            f"({exc.strerror or exc}): every node must be able to write --out"
        )
    return None


class WorkerActor:
    """The body of a Ray actor: the local pool's ``Worker`` behind Ray method calls.

    Its ``worker_state`` events name the Ray node (``node``) and host (``host``) it runs on."""

    def __init__(self, cfg: WorkerConfig, run_token: str = "") -> None:
        import ray

        self.host = socket.gethostname()
        self.node_id = ray.get_runtime_context().get_node_id()
        where = f"{self.host} ({self.node_id[:12]})"
        self.problem = run_dir_problem(cfg.run_dir, run_token, where) if run_token else None
        if self.problem is None:  # else its output stays in Ray's worker log on this node
            _redirect_output(cfg.log_path)  # nothing from a worker reaches a terminal
        os.environ.update(actor_environment(cfg))  # already set by the runtime env
        with contextlib.suppress(ValueError):  # the orchestrator decides when we stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        cfg = replace(cfg, slot=placed_slot(cfg.slot, list(ray.get_gpu_ids()), self.host))
        print(
            f"worker {cfg.slot.worker} generation {cfg.generation} pid {os.getpid()} on {cfg.slot.label} "
            f"(Ray actor, node {self.node_id[:12]})",
            flush=True,
        )
        self.outbox = EventBuffer()
        self.tasks = TaskQueue(self.outbox)
        self.worker = Worker(cfg, self._send)

    def _send(self, event: Event) -> None:
        if event.get("type") == "worker_state":
            event.setdefault("node", self.node_id)
            event.setdefault("host", self.host)
        self.outbox.put(event)

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "node_id": self.node_id,
            "host": self.host,
            "device": self.worker.cfg.slot.label,
        }

    def run(self) -> int:
        if self.problem is not None:
            self._send(make_event("error", worker=self.worker.n, fatal=True, message=self.problem))
            return 2
        self.worker.start()
        code = self.worker.serve(self.tasks)
        print(f"worker loop ended with code {code}", flush=True)
        return code

    def submit(self, shard: Shard) -> None:
        self.tasks.put(shard)

    def stop(self) -> None:
        self.tasks.put(None)

    def clear_cache(self, reason: str) -> None:
        if self.worker.engine is not None:  # not before the worker has started
            self.worker.clear_cache(reason)

    def events(self, wait_s: float) -> list[Event]:
        return self.outbox.drain(wait_s)


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


# == the pool (driver side) ===================================================================
@dataclass
class ClusterPlan:
    """What the factory learnt about the cluster, for the pools it builds."""

    placement: dict[int, str] = field(default_factory=dict)  # worker -> the node it is pinned to
    description: str = ""  # one line for logs/ray-driver.log
    notices: list[str] = field(default_factory=list)  # emitted once, as warning events


@dataclass
class RayWorkerHandle(WorkerHandle):
    actor: Any = None
    run_ref: Any = None
    events_ref: Any = None
    info_ref: Any = None
    exit_reason: str | None = None
    pid: int | None = None
    node_id: str | None = None  # the node it is pinned to (None: wherever Ray finds room)
    reported: bool = False  # the actor has sent an event: it was placed and its worker runs
    node_lost: bool = False  # it died with its node
    waiting_noted: bool = False

    @property
    def alive(self) -> bool:
        return self.actor is not None and self.exit_reason is None


class RayWorkerPool(PersistentWorkerPool):
    """``PersistentWorkerPool`` over Ray actors: same interface, policy and events."""

    def __init__(
        self,
        slots: list[DeviceSlot],
        make_config: Callable[[DeviceSlot, int], WorkerConfig],
        emit: EventSink,
        policy: PoolPolicy | None = None,
        plan: ClusterPlan | None = None,
    ) -> None:
        super().__init__(slots, make_config, emit, policy)
        self.ray = import_ray()
        self.plan = plan or ClusterPlan()
        self.workers: list[RayWorkerHandle] = [  # type: ignore[assignment]
            RayWorkerHandle(slot, node_id=self.plan.placement.get(slot.worker)) for slot in slots
        ]
        self._actor_class: Any = None
        self._cpu_share = 1.0
        self._local_node = ""
        self._nodes: dict[str, ClusterNode] = {}
        self._run_token = ""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        ray = self.ray
        self._nodes = {n.node_id: n for n in cluster_nodes(ray)}
        self._check_capacity(ray.cluster_resources())
        self._actor_class = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(WorkerActor)
        self._local_node = ray.get_runtime_context().get_node_id()
        if self.workers:
            run_dir = self.make_config(self.workers[0].slot, 0).run_dir.absolute()
            _driver_messages_to(run_dir / "logs" / DRIVER_LOG)
            self._run_token = _write_run_marker(run_dir)
            if self.plan.description:
                _log_line(run_dir / "logs" / DRIVER_LOG, self.plan.description)
        for notice in self.plan.notices:
            self.emit(make_event("warning", message=notice))
        self.plan.notices = []  # once per run, not once per pool
        super().start()

    def _check_capacity(self, resources: dict[str, float]) -> None:
        gpus_needed = sum(w.slot.kind == "cuda" for w in self.workers)
        gpus = resources.get("GPU", 0.0)
        if gpus_needed > gpus:
            raise InputError(
                f"the Ray cluster has {gpus:g} GPUs, and {gpus_needed} GPU workers were asked "
                "for; use --devices auto (one per GPU in the cluster) or cpu:N"
            )
        cpus = resources.get("CPU", 0.0)
        if self.workers and cpus <= 0:
            raise InputError("the Ray cluster has no CPUs to place worker actors on")
        # one CPU per actor where the cluster has them; a fair share of a small one otherwise
        self._cpu_share = _cpu_fraction(cpus / len(self.workers)) if self.workers else 1.0

    def _actor_cpus(self, w: RayWorkerHandle) -> tuple[float, int | None]:
        """The CPUs Ray reserves for the actor, and its torch threads (None: as configured).

        A CPU worker pinned to a node shares that node's CPUs with the others pinned there."""
        node = self._nodes.get(w.node_id or "")
        if node is None or w.slot.kind != "cpu":
            return self._cpu_share, None
        per_actor = node.cpus / sum(o.node_id == w.node_id for o in self._handles())
        return _cpu_fraction(per_actor), max(1, int(per_actor))

    def _spawn(self, w: WorkerHandle) -> None:
        assert isinstance(w, RayWorkerHandle)
        self._terminate(w)
        cfg = _portable(self.make_config(w.slot, w.generation))
        cpus, threads = self._actor_cpus(w)
        if threads is not None:
            cfg = replace(cfg, torch_threads=threads)
        options: dict[str, Any] = {
            "num_cpus": cpus,
            "num_gpus": 1 if w.slot.kind == "cuda" else 0,
            "runtime_env": {"env_vars": actor_environment(cfg)},
            "max_restarts": 0,
        }
        if w.node_id:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(w.node_id, soft=True)
        w.actor = self._actor_class.options(**options).remote(cfg, self._run_token)
        w.info_ref = _call(w.actor, "info", "control")
        w.run_ref = _call(w.actor, "run", "run")
        w.events_ref = _call(w.actor, "events", "events", EVENT_WAIT_S)
        w.exit_reason, w.pid, w.state, w.models_loaded = None, None, "starting", False
        w.reported = w.node_lost = w.waiting_noted = False
        w.last_heartbeat = time.time()

    def stop(self, graceful: bool = True) -> None:
        """Stop every actor; graceful lets them finish what they hold, else they are killed.
        An actor that never reported in holds nothing: it is killed at once."""
        for w in self._handles():
            w.stopping = True
            if w.alive and graceful and w.reported:
                _call(w.actor, "stop", "mailbox")
            elif not w.reported:
                self._terminate(w)
        deadline = time.time() + (self.policy.stop_timeout_s if graceful else 0)
        while graceful and time.time() < deadline and any(w.alive for w in self._handles()):
            self.poll(0.2, supervise=False)
        for w in self._handles():
            self._terminate(w)
            if w.state != "stopped":
                w.state = "stopped"
                self.emit(
                    make_event("worker_state", worker=w.n, state="stopped", device=w.slot.label)
                )
        self.started = False

    def _terminate(self, w: RayWorkerHandle, reap: bool = False) -> None:
        """Kill the actor; ``reap`` also SIGKILLs its process (a stopped process ignores Ray)."""
        if w.actor is None:
            return
        if reap:
            self._reap(w)
        with contextlib.suppress(Exception):
            self.ray.kill(w.actor, no_restart=True)
        if w.exit_reason is None:
            w.exit_reason = "stopped"
        w.run_ref = w.events_ref = None

    def _reap(self, w: RayWorkerHandle) -> None:
        try:
            info = self.ray.get(w.info_ref, timeout=2)
        except Exception:  # noqa: BLE001 - it never answered: nothing to reap
            return
        if info["node_id"] == self._local_node:
            _sigkill(info["pid"])
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(info["node_id"], soft=False)
        self.ray.remote(num_cpus=0, scheduling_strategy=strategy)(_sigkill).remote(info["pid"])

    def pids(self) -> list[int]:
        """Actor process ids (on their own nodes) of the live workers."""
        return [w.pid for w in self._handles() if w.alive and w.pid]

    def _handles(self) -> list[RayWorkerHandle]:
        return self.workers  # type: ignore[return-value]

    # -- work -------------------------------------------------------------------------------
    def clear_caches(self, reason: str = "manual") -> None:
        for w in self._handles():
            if w.alive:
                _call(w.actor, "clear_cache", "control", reason)

    def _dispatch(self) -> None:
        if self.paused:
            return
        live = self.live_workers()
        for w in self._handles():
            if w.retired or not w.alive or w.stopping or not w.reported:
                continue  # one that has not reported in may wait for a node for a long time
            depth = 1 + (self.policy.prefetch if len(self.queue) > len(live) else 0)
            while self.queue and len(w.assigned) < depth:
                shard = self.queue.popleft()
                _call(w.actor, "submit", "mailbox", shard)
                w.assigned.append(shard)

    # -- events and supervision -------------------------------------------------------------
    def poll(self, timeout: float, supervise: bool = True) -> list[Event]:
        """Dispatch, wait up to ``timeout`` for actor events, supervise. Returns the events."""
        self._dispatch()
        events = self._collect(timeout)
        if supervise:
            events.extend(self._supervise())
        self._dispatch()
        return events

    def _collect(self, timeout: float) -> list[Event]:
        watched: dict[Any, tuple[RayWorkerHandle, str]] = {}
        for w in self._handles():
            if w.alive:
                watched.update(
                    {
                        r: (w, kind)
                        for r, kind in ((w.events_ref, "events"), (w.run_ref, "run"))
                        if r
                    }
                )
        if not watched:
            return []
        refs = list(watched)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events: list[Event] = []
        for ref in sorted(ready, key=lambda r: watched[r][1] == "run"):  # a worker's events first
            w, kind = watched[ref]
            if w.alive:
                events += self._take_events(w, ref) if kind == "events" else self._take_exit(w, ref)
        return events

    def _unavailable(self) -> Any:
        return getattr(self.ray.exceptions, "ActorUnavailableError", ())  # Ray >= 2.30

    def _take_events(self, w: RayWorkerHandle, ref: Any) -> list[Event]:
        w.events_ref = None
        try:
            batch = self.ray.get(ref)
        except self._unavailable():
            time.sleep(0.1)  # transient (network, node under load or going): ask again soon;
            batch = []  # Ray reports the death if it lasts, else the heartbeat timeout decides
        except self.ray.exceptions.RayActorError as exc:
            self._died(w, exc)
            return []
        events = [self._on_event(w, e) for e in batch]
        if w.alive:
            w.events_ref = _call(w.actor, "events", "events", EVENT_WAIT_S)
        return events

    def _take_exit(self, w: RayWorkerHandle, ref: Any) -> list[Event]:
        """The worker loop ended: deliver its last events, then let the actor go."""
        ray_exc = self.ray.exceptions
        try:
            reason = f"exited with code {self.ray.get(ref)}"
        except self._unavailable():
            w.run_ref = None  # unreachable, maybe with its node: its events call will tell
            return []
        except ray_exc.RayActorError as exc:
            self._died(w, exc)
            return []
        except ray_exc.RayError as exc:
            reason = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
        events = self._drain(w)
        w.exit_reason = w.exit_reason or reason
        self._terminate(w)
        return events

    def _died(self, w: RayWorkerHandle, exc: BaseException) -> None:
        w.exit_reason = describe_death(exc)
        w.node_lost = died_with_node(exc) or not self._node_alive(w)

    def _node_alive(self, w: RayWorkerHandle) -> bool:
        """Whether the node the actor ran on is still in the cluster (True when unknown)."""
        try:
            node_id = self.ray.get(w.info_ref, timeout=0)["node_id"]
            return any(n["NodeID"] == node_id and n["Alive"] for n in self.ray.nodes())
        except Exception:  # noqa: BLE001 - it never answered, or the GCS did not: assume so
            return True

    def _drain(self, w: RayWorkerHandle) -> list[Event]:
        refs = [r for r in (w.events_ref, _call(w.actor, "events", "events", 0.0)) if r is not None]
        w.events_ref = None
        events: list[Event] = []
        for ref in refs:
            try:
                batch = self.ray.get(ref, timeout=EVENT_WAIT_S + 3)
            except Exception:  # noqa: BLE001 - the actor is going anyway
                continue
            events += [self._on_event(w, e) for e in batch]
        return events

    def _on_event(self, w: WorkerHandle, event: Event) -> Event:
        if isinstance(w, RayWorkerHandle):
            w.reported = True
            if event.get("pid"):
                w.pid = event["pid"]
        return super()._on_event(w, event)

    def _supervise(self) -> list[Event]:
        now = time.time()
        out: list[Event] = []
        for w in self._handles():
            if w.retired or w.stopping or w.actor is None:
                continue
            if w.exit_reason is not None:
                out += self._recover(w, w.exit_reason)
            elif now - w.last_heartbeat > self.policy.hang_timeout_s:
                if not w.reported and self._others_working(w):
                    out += self._note_waiting(w)  # it holds no shards: let it wait for a node
                    continue
                silent = now - w.last_heartbeat
                self._terminate(w, reap=True)
                out += self._recover(w, _silence(w, silent))
        if not self.live_workers():
            raise WorkerFailure(
                f"every worker failed past its restart limit ({self.policy.max_restarts} "
                f"restarts each); last: {self.last_failure}"
            )
        return out

    def _others_working(self, w: RayWorkerHandle) -> bool:
        return any(o is not w and o.alive and o.reported and not o.retired for o in self._handles())

    def _note_waiting(self, w: RayWorkerHandle) -> list[Event]:
        if w.waiting_noted:
            return []
        w.waiting_noted = True
        need = "1 GPU" if w.slot.kind == "cuda" else f"{self._actor_cpus(w)[0]:g} CPU"
        event = make_event(
            "warning",
            worker=w.n,
            message=f"worker {w.n} ({w.slot.label}) is waiting for a Ray node with room for it "
            f"({need}); the run goes on with the other workers",
        )
        self.emit(event)
        return [event]

    def _recover(self, w: WorkerHandle, reason: str, counted: bool = True) -> list[Event]:
        lost = isinstance(w, RayWorkerHandle) and w.node_lost
        if lost:  # its node is gone: the new actor goes wherever Ray finds room
            w.node_id = None  # type: ignore[attr-defined]
        # a lost node is not the worker's fault: its restart does not count against the limit
        events = super()._recover(w, reason, counted=counted and not lost)
        if w.retired and isinstance(w, RayWorkerHandle):
            self._terminate(w)
        return events


def _silence(w: RayWorkerHandle, seconds: float) -> str:
    if w.reported:
        return f"hung: no heartbeat for {seconds:.0f} s, killed"
    return (
        f"did not start within {seconds:.0f} s (no Ray node had room for it, or it failed to "
        f"start: see logs/worker-{w.n}.log), killed"
    )


def _cpu_fraction(cpus: float) -> float:
    """At most one CPU, in thousandths (what Ray accepts), never zero."""
    return max(0.001, min(1.0, int(cpus * 1000) / 1000))


def _portable(cfg: WorkerConfig) -> WorkerConfig:
    """The config with absolute paths: an actor's working directory is not the driver's."""
    files = replace(
        cfg.files,
        **{f.name: Path(getattr(cfg.files, f.name)).absolute() for f in fields(cfg.files)},
    )
    return replace(cfg, run_dir=cfg.run_dir.absolute(), files=files)


def _write_run_marker(run_dir: Path) -> str:
    token = uuid.uuid4().hex
    marker = run_dir / "logs" / RUN_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(token + "\n")
    return token


def _log_line(path: Path, line: str) -> None:
    with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} (driver) {line}\n")


def _call(actor: Any, method: str, group: str, *args: Any) -> Any:
    return getattr(actor, method).options(concurrency_group=group).remote(*args)


# == the factory ==============================================================================
class RayPoolFactory:
    """Builds ``RayWorkerPool`` s with the local pool's signature, on one Ray connection.

    ``resolve_slots(spec)`` gives the workers for ``--devices`` from the cluster's resources;
    an orchestrator that asks it (instead of local NVML) gets one actor per cluster GPU."""

    def __init__(
        self, address: str | None = None, init_options: dict[str, Any] | None = None
    ) -> None:
        self.address = address
        self.init_options = init_options or {}
        self.ray = import_ray()
        self._resolved: list[DeviceSlot] | None = None
        self.plan = ClusterPlan()

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
        self.plan.notices = security_notices(gcs, private, token)
        self.plan.description = (
            f"Ray {ray.__version__} cluster at {gcs} "
            f"({'started for this run' if private else 'joined'}), "
            f"token authentication {'on' if token else 'off'}"
        )
        return ray

    def resolve_slots(self, spec: str) -> list[DeviceSlot]:
        slots, self.plan.placement = slots_for_cluster(spec, cluster_nodes(self.connect()))
        self._resolved = list(slots)
        return slots

    def __call__(
        self,
        slots: list[DeviceSlot],
        make_config: Callable[[DeviceSlot, int], WorkerConfig],
        emit: EventSink,
        policy: PoolPolicy | None = None,
    ) -> RayWorkerPool:
        self.connect()
        plan = self.plan if slots == self._resolved else replace(self.plan, placement={})
        return RayWorkerPool(slots, make_config, emit, policy, plan=plan)


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


def ray_pool_factory(address: str | None = None) -> RayPoolFactory:
    """The pool factory for ``run --backend ray [--ray-address ADDR]``. Connects now (from the
    main thread: Ray ties a local cluster's processes to the thread that starts it)."""
    factory = RayPoolFactory(address)
    factory.connect()
    return factory


__all__ = [
    "INSTALL_HINT",
    "ClusterPlan",
    "RayPoolFactory",
    "RayWorkerPool",
    "WorkerActor",
    "ray_pool_factory",
    "security_notices",
    "slots_for_cluster",
    "cluster_nodes",
    "import_ray",
]
