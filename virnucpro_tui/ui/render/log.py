"""The event log's lines and filters, and the overview's recent events."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.pool import events as ev
from virnucpro_tui.run.describe import (
    fmt_clock,
    log_description,
)

# -- event log ------------------------------------------------------------------------------------
LOG_GROUPS: dict[str, frozenset[str]] = {
    "problems": frozenset({"error", "warning", "oom", "shard_requeued"}),
    "models": frozenset({"model_load"}),
    "workers": frozenset({"worker_state"}),
    "shards": frozenset({"shard_done", "shard_skipped", "shard_requeued"}),
    "memory": frozenset({"cache_cleared", "oom"}),
    "jobs": frozenset({"job_started", "job_added", "job_prepared", "job_done"}),
    "run": frozenset({"run_started", "run_done", "run_paused", "run_resumed"}),
}
LOG_GROUP_LABELS = {
    "problems": "Errors & warnings",
    "models": "Model loads",
    "workers": "Worker states",
    "shards": "Shards",
    "memory": "Memory & cache",
    "jobs": "Jobs",
    "run": "Run",
}
EVENT_STYLES = {
    "error": "bold red",
    "warning": "yellow",
    "oom": "red",
    "shard_requeued": "yellow",
    "cache_cleared": "magenta",
    "model_load": "green",
    "job_done": "bold green",
    "run_done": "bold",
}


def log_matches(event: ev.Event, worker: object, group: object) -> bool:
    """Does ``event`` pass the log filters (worker: None/'run'/int; group: None/LOG_GROUPS key)?"""
    if worker == "run" and event.worker is not None:
        return False
    if isinstance(worker, int) and event.worker != worker:
        return False
    return not (isinstance(group, str) and event.type not in LOG_GROUPS.get(group, ()))


def recent_text(event: ev.Event) -> Text:
    """A compact log line for the overview: time, who, what (the kind shows in the colour)."""
    who = f"w{event.worker}" if event.worker is not None else "run"
    return Text.assemble(
        (fmt_clock(event.ts), "dim"),
        " ",
        (f"{who:>3}", "bold"),
        " ",
        (log_description(event) or event.type, EVENT_STYLES.get(event.type, "")),
    )


def log_text(event: ev.Event) -> Text:
    who = f"w{event.worker}" if event.worker is not None else "run"
    kind = event.type
    return Text.assemble(
        (fmt_clock(event.ts), "dim"),
        " ",
        (f"{who:>3}", "bold"),
        " ",
        (f"{kind:<14}", EVENT_STYLES.get(kind, "")),
        " ",
        log_description(event),
    )
