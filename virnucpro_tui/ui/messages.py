"""Messages from the run's threads to the app (``App.post_message`` is thread-safe).

Telemetry of one worker supersedes its own previous reading: when several are queued back to
back, only the newest is handled, so eight busy workers cannot flood the app.
"""

from __future__ import annotations

from textual.message import Message

from virnucpro_tui.pool.events import Event, Progress, ShardDone


class EventMessage(Message, bubble=False):
    """One event from the live run."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event
        latest_wins = event.TELEMETRY  # a newer reading of the same kind supersedes it
        self.key = (event.type, event.worker) if latest_wins else None
        # a progress event that ends a model's stage carries its timing: never drop it
        closes_stage = isinstance(event, Progress) and event.closes_stage
        self.replaceable = latest_wins and not closes_stage

    def can_replace(self, message: Message) -> bool:
        """May the queued ``message`` (a newer one) stand in for this one?"""
        return self.replaceable and isinstance(message, EventMessage) and message.key == self.key


class EventBatch(Message, bubble=False):
    """Events read together from ``events.jsonl`` (attach); ``backlog`` when replaying history."""

    def __init__(self, events: list[Event], backlog: bool = False) -> None:
        super().__init__()
        self.events = events
        self.backlog = backlog


class RunFinished(Message, bubble=False):
    """The orchestrator's thread returned: every worker process has stopped."""

    def __init__(self, exit_code: int, error: str | None = None) -> None:
        super().__init__()
        self.exit_code = exit_code
        self.error = error


class OwnerChanged(Message, bubble=False):
    """Attach: who runs the run, from its lock record (``pid N on HOST``, ``(gone)`` once
    that process has died); None without a lock record."""

    def __init__(self, owner: str | None) -> None:
        super().__init__()
        self.owner = owner


class ProcessGone(Message, bubble=False):
    """Attach: the run's process is gone and its last events have been read (it died after the
    last of them: ``RunView.process_gone``)."""


class EarlierResults(Message, bubble=False):
    """A resumed live run: the results of the shards finished before it stopped, read back from
    its events file. Each shows once the run has verified it again (``shard_skipped``)."""

    def __init__(self, shards: list[ShardDone]) -> None:
        super().__init__()
        self.shards = shards
