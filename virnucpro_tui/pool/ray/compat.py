"""Every touch of Ray's internals, in one place (docs/ray.md): the hooks this backend patches or
reads that are not Ray's public API, and the parsing of Ray's error texts. ``INTERNALS`` names
each; tests/test_ray.py checks that the installed Ray still has them, so an upgrade that moves
one fails loudly there, not silently in a user's run."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INTERNALS = (
    ("ray._private.worker", "print_to_stdstream"),  # driver_messages_to
    ("ray._private.ray_constants", "ENABLE_RAY_CLUSTER"),  # loopback_only
    ("ray._private.services", "canonicalize_bootstrap_address"),  # starts_private_cluster
    ("ray._raylet", "AuthenticationMode"),  # token_auth_enabled
    ("ray._raylet", "get_authentication_mode"),
    ("ray.exceptions", "ActorUnavailableError"),  # actor_unavailable_error
)
"""(module, attribute): the internals this module relies on."""


def missing_internals() -> list[str]:
    """The ``INTERNALS`` the installed Ray lacks (each ``module.attribute``)."""
    modules: dict[str, Any] = {}
    with contextlib.suppress(ImportError):
        import ray._private.worker as ray_worker

        modules["ray._private.worker"] = ray_worker
    with contextlib.suppress(ImportError):
        import ray._private.ray_constants as ray_constants

        modules["ray._private.ray_constants"] = ray_constants
    with contextlib.suppress(ImportError):
        import ray._private.services as ray_services

        modules["ray._private.services"] = ray_services
    with contextlib.suppress(ImportError):
        import ray._raylet as ray_raylet

        modules["ray._raylet"] = ray_raylet
    with contextlib.suppress(ImportError):
        import ray.exceptions as ray_exceptions

        modules["ray.exceptions"] = ray_exceptions
    return [f"{m}.{name}" for m, name in INTERNALS if not hasattr(modules.get(m), name)]


def actor_unavailable_error(ray: Any) -> Any:
    """``ray.exceptions.ActorUnavailableError`` (Ray >= 2.30), or () that catches nothing."""
    return getattr(ray.exceptions, "ActorUnavailableError", ())


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


def driver_messages_to(path: Path) -> None:
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
def loopback_only() -> Iterator[None]:
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
