"""Dialogs: confirm quit, add an input, help, and the completion view."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from virnucpro_tui.ui import render

KEYS = """\
[b]Keys[/b]
  [b]q[/b]        quit: asks, lets the shards in flight finish, stays resumable
           (q again while it stops abandons the shards in flight)
  [b]ctrl+c[/b]   the same without asking; a second ctrl+c abandons
  [b]p[/b]        pause: shards already running finish, no new one starts; p resumes
  [b]c[/b]        empty every worker's GPU cache now (panels show bytes freed)
  [b]a[/b]        add a FASTA or FASTQ input while the run goes on
  [b]l[/b]        the event log, filtered by worker and kind
  [b]1 2 3[/b]    overview, results, log         [b]s[/b]    the summary when done
  [b]r[/b]        the path of report.html (open it in a browser where you are)
  [b]↑ ↓[/b]      in Results: pick the sequence whose track is drawn
  [b]?[/b]        this help                      [b]tab[/b]  moves focus; mouse works"""
READ_ONLY_KEYS = """\
[b]Keys[/b] (attached, read-only: p, c and a belong to the process running the run)
  [b]q[/b]        leave (the run goes on)
  [b]l[/b]        the event log, filtered by worker and kind
  [b]1 2 3[/b]    overview, results, log         [b]s[/b]    the summary when done
  [b]r[/b]        the path of report.html (open it in a browser where you are)
  [b]↑ ↓[/b]      in Results: pick the sequence whose track is drawn
  [b]?[/b]        this help                      [b]tab[/b]  moves focus; mouse works"""


def _legend(items: tuple[tuple[str, str], ...]) -> str:
    return "  ".join(f"{glyph} {meaning}" for glyph, meaning in items)


def help_text(read_only: bool = False) -> str:
    """The help screen: the keys that work in this mode, what the panels and bars show (with
    the glyphs the bars are drawn with), and how a sequence's call is made."""
    gpu, cpu = render.MEMORY_LEGEND["GPU"], render.MEMORY_LEGEND["CPU"]
    return f"""\
{READ_ONLY_KEYS if read_only else KEYS}

[b]Worker panels[/b]
  state    state, pid, restarts; GPU utilisation from NVML ("CPU" on CPU); GONE once the
           run's process has died
  models   DNABERT-S, ESM-2, MLP: loading, compiling/warming up (with the time so far),
           then load time + warm-up time and size on the device
  memory   GPU: {_legend(gpu)}
           CPU: {_legend(cpu)}
  speed    frames/s of recent shards; DNABERT-S frames/s and ESM-2 proteins/s over their
           stages, from device-synchronised stage times
  shard    the shard in progress and its frames
  cache    clears (periodic, on OOM, or c) and what the last one freed

[b]Progress[/b]  {_legend(render.PROGRESS_LEGEND)}; {PROGRESS_NOTE}

[b]Calls[/b]  {render.CALL_RULE}. {CALL_NOTE}
"""


PROGRESS_NOTE = (
    "a total with ~ is an estimate (from the input read so far) until every input is prepared"
)
CALL_NOTE = (
    "max P(virus) is the best single frame's score, so a sequence can score high and still be "
    "called others (docs/outputs.md)."
)


class ConfirmQuitScreen(ModalScreen[bool]):
    """Stop the run? (the run stays resumable)."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Stop the run"),
        Binding("n,escape,q", "answer(False)", "Keep running"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Stop the run?[/b]", classes="dialog-title")
            yield Static(
                "The shards in flight finish and are kept; nothing else starts. "
                "Rerun the same command to resume where it stopped."
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop (y)", variant="error", id="yes")
                yield Button("Keep running (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


def check_input_path(text: str, cwd: Path | None = None) -> tuple[Path | None, str | None]:
    """The input file the user typed, or why it cannot be added (its contents are checked by the run)."""
    text = text.strip()
    if not text:
        return None, "type the path of a FASTA or FASTQ file"
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    if not path.exists():
        return None, f"{path}: no such file"
    if path.is_dir():
        return None, f"{path}: is a directory, not a FASTA or FASTQ file"
    if not os.access(path, os.R_OK):
        return None, f"{path}: cannot be read"
    if path.stat().st_size == 0:
        return None, f"{path}: is empty"
    return path, None


class AddInputScreen(ModalScreen[Path | None]):
    """Ask for a FASTA or FASTQ path; the run validates its contents and queues it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, cwd: Path | None = None) -> None:
        super().__init__()
        self.cwd = cwd

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Add an input[/b]", classes="dialog-title")
            yield Static(
                "A FASTA or FASTQ file (plain, .gz, .bz2, .xz or .zst). It joins the job queue and "
                "shares the warm workers."
            )
            yield Input(placeholder="path/to/reads.fa.gz", id="add-path")
            yield Static("", id="add-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add", variant="primary", id="add")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#add-path", Input).focus()

    def submit(self) -> None:
        path, problem = check_input_path(self.query_one("#add-path", Input).value, self.cwd)
        if problem:
            self.query_one("#add-error", Static).update(Text(problem, style="bold red"))
            return
        self.dismiss(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, text: str | None = None) -> None:
        super().__init__()
        self.text = text or help_text()

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide-dialog"):
            yield Static(self.text, id="help-text")
            yield Static("[dim]esc, ? or q closes this[/dim]")

    def action_close(self) -> None:
        self.dismiss(None)


class CompletionScreen(ModalScreen[str]):
    """The run is over: totals and where the outputs are. ``q`` quits, ``esc`` shows the dashboard."""

    BINDINGS = [
        Binding("q", "choose('quit')", "Quit"),
        Binding("escape", "choose('back')", "Dashboard"),
    ]

    def __init__(self, summary: Text, title: str) -> None:
        super().__init__()
        self.summary = summary
        self.title_text = title

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide-dialog", id="completion"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(self.summary, id="completion-text")
            yield Static("[dim]q quits · esc shows the dashboard (s brings this back)[/dim]")

    @property
    def shown(self) -> str:
        return self.summary.plain

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
