"""A worker's inbox: the shards sent to it, taken one at a time by its loop, and recalled (those
not started) when the run pauses. The local worker's pipe reader and the Ray actor's mailbox
both fill one (docs/architecture.md#the-pool-one-supervisor-two-transports)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from virnucpro_tui.core.shards import Shard


class ShardInbox:
    """The shards a worker holds, in the order they were sent. The transport puts them in; the
    worker takes the next when it is free; a recall takes back those not started yet.

    ``take`` runs ``on_start`` under the inbox's lock, so a shard is either recalled or started
    (and announced) before the answer to a recall goes out, never both."""

    def __init__(self, before_take: Callable[[], object] | None = None) -> None:
        self._items: deque[Shard] = deque()
        self._stopped = False
        self._cv = threading.Condition()
        self._before_take = before_take  # e.g. Ray: let earlier events reach the pool first

    def put(self, shard: Shard) -> None:
        with self._cv:
            self._items.append(shard)
            self._cv.notify_all()

    def stop(self) -> None:
        """No more shards: ``take`` returns None once the ones held are done."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def take(self, on_start: Callable[[Shard], None]) -> Shard | None:
        """The next shard (blocking), started by ``on_start``; None once stopped and empty."""
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._items) or self._stopped)
                if not self._items:
                    return None
            if self._before_take is not None:
                self._before_take()
            with self._cv:
                if self._items:  # not recalled meanwhile
                    shard = self._items.popleft()
                    on_start(shard)
                    return shard

    def peek(self) -> Shard | None:
        with self._cv:
            return self._items[0] if self._items else None

    def recall(self) -> list[Shard]:
        """Remove and return every shard not started yet."""
        with self._cv:
            shards, self._items = list(self._items), deque()
            return shards
