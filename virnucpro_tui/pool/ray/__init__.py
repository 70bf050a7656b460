"""The Ray backend, as a package: one persistent actor per GPU of a Ray cluster, running the local pool's
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

The modules: ``actor`` (inside the actor: ``WorkerActor``, its ``EventBuffer``), ``transport``
(the driver's ``ActorTransport``), ``backend`` (``RayBackend``: the cluster, capacity, spawning,
security notices), ``placement`` (nodes, slots, and each node's check of the run directory) and
``compat`` (every touch of Ray's internals). Placement, the shared run directory and security:
docs/ray.md.

Ray is optional: without it ``ray_backend`` raises an ``InputError`` saying how to install it,
and this module imports without it.
"""

from virnucpro_tui.pool.ray.backend import INSTALL_HINT, RayBackend, import_ray, ray_backend

__all__ = ["INSTALL_HINT", "RayBackend", "import_ray", "ray_backend"]
