"""The tests' own checks on event logs: they must tell a fault from a legal interleaving."""

from __future__ import annotations

from typing import Any

from tests.helpers import started_during


def test_started_during_tells_a_new_start_from_a_load_ending() -> None:
    def state(worker: int, name: str, shard: int | None = None) -> dict[str, Any]:
        return {"type": "worker_state", "worker": worker, "state": name, "shard": shard}

    before = [state(0, "busy", 1), state(1, "loading")]
    assert started_during(before, [state(1, "busy", 2)]) == []  # its load ends: same shard
    new = state(0, "busy", 3)
    assert started_during(before, [state(0, "idle"), new]) == [new]
    again = state(1, "busy", 4)
    assert started_during(before, [state(1, "busy", 2), state(1, "idle"), again]) == [again]
