"""The run's speed, from finished shards only, with paused time left out.

Every rate a front end shows comes from one fact: a verified shard finished on a worker, with
its frames and its seconds (``shard_done``). A worker's rate is the frames of its shards finished
in the last window over the span they cover on the *active clock*, which stops while a pause
holds the run idle (paused, and no shard still running), so the ETA after a pause is not
stretched by it. The run's rate is the sum of its workers' rates, so the header can never claim
more than the worker panels, nor more than the device-synchronised stage rates that bound each
shard (docs/architecture.md#events-and-front-ends).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

RATE_WINDOW_S = 60.0  # rates cover the shards finished in the last minute of active time


class ActiveClock:
    """Wall time less the time the run sat paused with nothing running."""

    def __init__(self) -> None:
        self.idle_since: float | None = None
        self.idle_total = 0.0

    def halt(self, ts: float) -> None:
        """The run is paused and nothing runs any more (idempotent)."""
        if self.idle_since is None:
            self.idle_since = ts

    def resume(self, ts: float) -> None:
        if self.idle_since is not None:
            self.idle_total += max(ts - self.idle_since, 0.0)
            self.idle_since = None

    def at(self, ts: float) -> float:
        """``ts`` on the active clock."""
        idle = self.idle_total
        if self.idle_since is not None:
            idle += max(ts - self.idle_since, 0.0)
        return ts - idle


@dataclass(frozen=True)
class FinishedShard:
    start: float  # active clock: when the worker began it
    end: float  # active clock: when it was verified
    seconds: float  # the worker's own measure of the shard
    frames: int


class ShardRates:
    """Each worker's recently finished shards, and the rates they give."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.clock = ActiveClock()
        self._shards: dict[int, deque[FinishedShard]] = {}
        self._started: dict[int, float] = {}  # active clock: when each worker began its shard

    def start(self, worker: int, ts: float) -> None:
        """``worker`` began a shard at wall time ``ts``."""
        self._started[worker] = self.clock.at(ts)

    def add(self, worker: int, ts: float, seconds: float, frames: int) -> None:
        """A shard of ``frames`` finished on ``worker`` at wall time ``ts`` after ``seconds``
        (the worker's measure); it began when the worker said so, or ``seconds`` before."""
        end, seconds = self.clock.at(ts), max(seconds, 0.0)
        start = min(self._started.pop(worker, end), end - seconds)
        shards = self._shards.setdefault(worker, deque())
        shards.append(FinishedShard(start, end, seconds, frames))
        while len(shards) > 1 and shards[0].end < end - self.window_s:
            shards.popleft()

    def recent(self, worker: int, ts: float) -> list[FinishedShard]:
        """The worker's shards finished in the window before ``ts``; at least its last one."""
        shards = self._shards.get(worker)
        if not shards:
            return []
        since = self.clock.at(ts) - self.window_s
        return [s for s in shards if s.end >= since] or [shards[-1]]

    def worker_rate(self, worker: int, ts: float) -> float:
        """Frames per second of active time: the window's finished frames over the span from the
        first one's start to the last one's end, or to now once the worker has been without a
        finished shard for longer than its last one took (idle or stuck workers slow down)."""
        shards = self.recent(worker, ts)
        if not shards:
            return 0.0
        frames = sum(s.frames for s in shards)
        busy = sum(s.seconds for s in shards)
        last = shards[-1]
        span = max(last.end, self.clock.at(ts) - (last.end - last.start)) - shards[0].start
        return frames / max(span, busy, 1e-9)

    def busy_rate(self, worker: int, ts: float) -> float:
        """Frames per second while busy: the window's finished frames over their own seconds
        (no run rate can exceed the sum of these)."""
        shards = self.recent(worker, ts)
        busy = sum(s.seconds for s in shards)
        return sum(s.frames for s in shards) / busy if busy > 0 else 0.0

    def total(self, ts: float) -> float:
        return sum(self.worker_rate(worker, ts) for worker in self._shards)

    def workers(self) -> list[int]:
        return sorted(self._shards)
