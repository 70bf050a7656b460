"""What the dashboard's toasts say: about notable events of a live run, and in answer to keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.notifications import SeverityLevel

from virnucpro_tui.pool.events import (
    ErrorEvent,
    Event,
    JobAdded,
    RunPaused,
    RunResumed,
    WarningEvent,
)
from virnucpro_tui.run.describe import pause_text
from virnucpro_tui.run.view import RunView

READ_ONLY_NOTICE = "Read-only: this run is driven by another process, so p, c and a are off here."


@dataclass(frozen=True)
class Notice:
    message: str
    title: str = ""
    severity: SeverityLevel = "information"
    timeout: float | None = None


STOPPING = Notice(
    "Stopping: the shards in flight finish, then the run exits and stays resumable. "
    "q or ctrl+c again abandons them.",
    title="stopping",
    timeout=10,
)
ABANDONING = Notice(
    "Abandoning the shards in flight and stopping every worker.", severity="warning"
)
CLEARING = Notice(
    "Emptying every worker's cache now; the panels show the bytes freed.", title="cache"
)
READ_ONLY = Notice(READ_ONLY_NOTICE, title="attached", severity="warning")
NOT_GOING = Notice("The run is no longer going.", severity="warning")


def pausing(paused: bool) -> Notice:
    return Notice(
        "Pausing: shards already running finish, none starts (p resumes)."
        if paused
        else "Resuming dispatch.",
        title="pause",
    )


def adding(path: Path) -> Notice:
    return Notice(
        f"{path}: checked by the run, then queued (see the job queue).", title="adding input"
    )


def dead(resume_command: str | None) -> Notice:
    return Notice(
        "The run's process ended without finishing. Resume it with: "
        f"{resume_command or 'the same command'}",
        title="run dead",
        severity="error",
        timeout=30,
    )


def event_notice(event: Event, view: RunView) -> Notice | None:
    """The toast a live run's event deserves, if any."""
    if isinstance(event, RunPaused):
        return Notice(f"Paused: {pause_text(view)}. p resumes.", title="paused")
    if isinstance(event, RunResumed):
        return Notice("Resumed: shards start again.", title="resumed")
    if isinstance(event, WarningEvent):
        return Notice(event.message, title="warning", severity="warning", timeout=8)
    if isinstance(event, ErrorEvent):
        return Notice(event.message, title="error", severity="error", timeout=10)
    if isinstance(event, JobAdded):
        return Notice(f"{event.input} added as job {event.job}", title="input added")
    return None


def report_notice(view: RunView, run_dir: Path | None = None) -> Notice:
    """Where report.html is (``r``): never a browser launched, the user is often on ssh.
    ``run_dir``: where an attached run was found (the run's own --out may have moved)."""
    root = run_dir or (Path(view.out) if view.out else None)
    path = root / "report.html" if root is not None else None
    if path is not None and path.is_file():
        return Notice(
            f"{path}\ncopy it to your machine (scp) and open it in a browser; it needs no network",
            title="report.html",
            timeout=20,
        )
    return Notice(
        "report.html is written when an input is done (not with --no-report; "
        f"`virnucpro-tui report {view.out or 'RUN_DIR'}` builds it then)",
        title="No report yet",
        timeout=10,
    )
