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

from virnucpro_tui.errors import EXIT_ERROR, EXIT_OK, InputError
from virnucpro_tui.pool.events import Event, RunDone, RunStatus
from virnucpro_tui.run.attach import Process, RunWatch, check_run_dir, resume_command_of
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
            if self.view.resume_command is None:  # a run of this process: the command it ran
                self.view.resume_command = resume_command_of(self.view.out)
            self.print(progress_line(self.view, event.ts))
            for text in summary_lines(self.view):
                self.print(text)

    def tick(self, now: float | None = None, force: bool = False) -> None:
        """A progress line, if the run is going and ``interval_s`` has passed (or ``force``).
        The first waits until the inputs' size can be estimated (within the first second)."""
        now = now or time.time()
        if not self.view.live:
            return
        sized = self.view.totals().total is not None or self.view.frames_done > 0
        if force or (sized and now - self._last_line >= self.interval_s):
            self._last_line = now
            self.print(progress_line(self.view, now))


# -- attach --no-ui -------------------------------------------------------------------------------
def attach_headless(
    run_dir: Path,
    follow: bool,
    stream: TextIO | None = None,
    poll_s: float = 0.5,
    interval_s: float = 5.0,
    check_every_s: float = 2.0,
) -> int:
    """Print the events so far; with ``follow``, keep printing until the run ends or its
    process dies. Exit 0 when the run completed (or, without ``follow``, is still running);
    1 when it ended without completing: died, interrupted or failed (docs/reliability.md)."""
    reporter = HeadlessReporter(stream or sys.stdout, interval_s)
    watch = RunWatch(run_dir, check_every_s)
    reporter.view.resume_command = watch.resume_command()
    try:
        for event in watch.tail.backlog():
            reporter.feed(event)
        _check_process(watch, reporter)
        reporter.tick(force=True)
        if follow:
            _follow(watch, reporter, poll_s)
        return _outcome(watch, reporter, follow)
    finally:
        watch.close()


def _check_process(watch: RunWatch, reporter: HeadlessReporter) -> None:
    """Once the lock record says the process is gone, read what it wrote last; without its
    ``run_done`` the run died unfinished."""
    if reporter.view.status.finished or watch.process() != Process.GONE:
        return
    for event in watch.tail.poll():
        reporter.feed(event)
    if not reporter.view.status.finished:
        reporter.view.process_gone()  # after its last event, as the dashboard says


def _follow(watch: RunWatch, reporter: HeadlessReporter, poll_s: float) -> None:
    if not watch.tail.path.exists():
        reporter.print(f"waiting for {watch.tail.path} ...")
    view = reporter.view
    while not view.status.finished and not view.dead:
        for event in watch.tail.poll():
            reporter.feed(event)
        _check_process(watch, reporter)
        reporter.tick()
        if not view.status.finished and not view.dead:
            time.sleep(poll_s)


def _outcome(watch: RunWatch, reporter: HeadlessReporter, follow: bool) -> int:
    view = reporter.view
    if view.dead:
        for text in summary_lines(view):
            reporter.print(text)
        return EXIT_ERROR
    if view.status.finished:
        return EXIT_OK if view.status == RunStatus.COMPLETE else EXIT_ERROR
    where = watch.owner_text() or "no lock record"
    if watch.process() == Process.ALIVE:
        reporter.print(
            f"(the run is still running, {where}: `{PROG} attach --follow {watch.run_dir}` "
            "keeps watching)"
        )
    else:
        reporter.print(
            f"(the run's process is {where}: from this host it cannot be told whether it "
            f"still runs; `{PROG} attach --follow {watch.run_dir}` watches for its end)"
        )
    return EXIT_OK


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
