"""The headless front end: plain progress lines for ssh, nohup, SLURM and CI, for a run in this
process (``run`` without a terminal) and for one read from its events (``attach --no-ui``).

One line every few seconds and a line for each notable event, with no control characters. It
folds the event stream into the same RunView as the dashboard and words it through
``run/describe.py``, so both say the same thing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from virnucpro_tui.errors import EXIT_OK, InputError
from virnucpro_tui.pool.events import Event, RunDone, RunStatus
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.run.attach import EventTail, check_run_dir, owner_alive, run_owner
from virnucpro_tui.run.describe import event_line, progress_line, summary_lines
from virnucpro_tui.run.view import RunView

PROG = "virnucpro-tui"


class HeadlessReporter:
    """Prints a run's notable events, a progress line every ``interval_s`` while it runs, and
    its summary once it is done. As an event sink (``reporter(event)``) it paces the progress
    lines itself; ``attach`` feeds history with ``feed`` and paces them with ``tick``."""

    def __init__(self, stream: TextIO | None = None, interval_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (2.0 if tty else 5.0)
        self.view = RunView()
        self._last_line = 0.0

    def print(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def __call__(self, event: Event) -> None:
        self.feed(event)
        if not isinstance(event, RunDone):
            self.tick()

    def feed(self, event: Event) -> None:
        """Fold one event; print its line, and the summary when the run is done."""
        self.view.apply(event)
        line = event_line(event)
        if line:
            self.print(line)
        if isinstance(event, RunDone):
            self.print(progress_line(self.view, event.ts))
            for text in summary_lines(self.view):
                self.print(text)

    def tick(self, now: float | None = None, force: bool = False) -> None:
        """A progress line, if the run is going and ``interval_s`` has passed (or ``force``)."""
        now = now or time.time()
        if self.view.status != RunStatus.RUNNING:
            return
        if force or now - self._last_line >= self.interval_s:
            self._last_line = now
            self.print(progress_line(self.view, now))


# -- attach --no-ui -------------------------------------------------------------------------------
def attach_headless(
    run_dir: Path,
    follow: bool,
    stream: TextIO | None = None,
    poll_s: float = 0.5,
    interval_s: float = 5.0,
) -> int:
    """Print the events so far; with ``follow``, keep printing until the run ends."""
    reporter = HeadlessReporter(stream or sys.stdout, interval_s)
    tail = EventTail(RunLayout(run_dir).events)
    try:
        for event in tail.backlog():
            reporter.feed(event)
        reporter.tick(force=True)
        if not follow:
            if not reporter.view.status.finished:
                reporter.print(
                    f"(the run is still going: `{PROG} attach --follow {run_dir}` keeps watching)"
                )
            return EXIT_OK
        _follow(run_dir, tail, reporter, poll_s)
    finally:
        tail.close()
    return EXIT_OK


def _follow(run_dir: Path, tail: EventTail, reporter: HeadlessReporter, poll_s: float) -> None:
    if not tail.path.exists():
        reporter.print(f"waiting for {tail.path} ...")
    quiet_polls = 0
    while not reporter.view.status.finished:
        events = tail.poll()
        for event in events:
            reporter.feed(event)
        quiet_polls = 0 if events or owner_alive(run_dir) is not False else quiet_polls + 1
        if quiet_polls >= 2:  # the owner is gone and nothing more came: killed, not finished
            owner = run_owner(run_dir)
            reporter.print(
                f"the run's process ({owner.pid if owner else None}) ended without finishing; "
                "rerun the same command to resume"
            )
            return
        reporter.tick()
        if not reporter.view.status.finished:
            time.sleep(poll_s)


def attach(run_dir: Path, follow: bool) -> int:
    """``virnucpro-tui attach DIR`` without a terminal: plain lines (the CLI opens the dashboard
    itself when there is one, so this module never imports Textual)."""
    run_dir = Path(run_dir)
    try:
        check_run_dir(run_dir)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return attach_headless(run_dir, follow)
