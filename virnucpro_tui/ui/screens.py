"""Dialogs: confirm quit, add an input, help, and the completion view."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, TypeVar

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from virnucpro_tui.ui import render

Answer = TypeVar("Answer")
HELP_WIDTH = 72  # the help's lines: whole inside the dialog at 80 columns (border, gutter)
TERM_WIDTH = 11
KEYS = [
    ("q", "quit: asks, lets the shards in flight finish, stays resumable (q again while it "
     "stops abandons the shards in flight)"),
    ("ctrl+c", "the same without asking; a second ctrl+c abandons"),
    ("p", "pause: shards already running finish, no new one starts; p resumes"),
    ("c", "empty every worker's GPU cache now (panels show bytes freed)"),
    ("a", "add a FASTA or FASTQ input while the run goes on"),
]  # fmt: skip
READ_ONLY_KEYS = [("q", "leave (the run goes on)")]
COMMON_KEYS = [
    ("l", "the event log, filtered by worker and kind"),
    ("1 2 3", "overview, results, log"),
    ("s", "the summary when the run is over"),
    ("r", "the path of report.html (open it in a browser where you are)"),
    ("↑ ↓", "in Results: pick the sequence whose track is drawn"),
    ("?", "this help"),
    ("tab", "moves focus; the mouse works too"),
]
PANEL_ROWS = [
    ("state", 'state, pid, restarts; GPU utilisation from NVML ("CPU" on CPU); GONE once '
     "the run's process has died"),
    ("models", "DNABERT-S, ESM-2, MLP: loading, compiling/warming up (with the time so far), "
     "then load time + warm-up time and size on the device"),
    ("speed", "frames/s over the worker's shards finished in the last minute (the header's "
     "rate is their sum; paused time left out); DNABERT-S frames/s and ESM-2 proteins/s over "
     "their stages, from device-synchronised stage times"),
    ("shard", "the shard in progress and its frames"),
    ("cache", "clears (periodic, on OOM, or c) and what the last one freed"),
]  # fmt: skip
COMPACT_NOTE = (
    "When the full panels do not fit the terminal, each worker is one line: its title, state, "
    "speed, memory and shard."
)


def _legend(items: tuple[tuple[str, str], ...]) -> str:
    return "  ".join(f"{glyph} {meaning}" for glyph, meaning in items)


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    """Each term in bold in its column, its description wrapped beside it (hanging indent)."""
    lines = []
    for term, description in rows:
        wrapped = render.wrap_words(description, HELP_WIDTH - TERM_WIDTH) or [""]
        pad = " " * (TERM_WIDTH - 2 - len(term))
        lines.append(f"  [b]{escape(term)}[/b]{pad}{escape(wrapped[0])}")
        lines += [" " * TERM_WIDTH + escape(line) for line in wrapped[1:]]
    return lines


def _paragraph(title: str, text: str) -> list[str]:
    lines = render.wrap_words(f"{title}  {text}", HELP_WIDTH)
    first = escape(lines[0]).replace(title, f"[b]{title}[/b]", 1)
    return [first, *(escape(line) for line in lines[1:])]


def help_text(read_only: bool = False) -> str:
    """The help screen: the keys that work in this mode, what the panels and bars show (with
    the glyphs the bars are drawn with), and how a sequence's call is made; every line fits
    ``HELP_WIDTH``, so it reads the same at 80 columns as at 200."""
    gpu, cpu = render.MEMORY_LEGEND["GPU"], render.MEMORY_LEGEND["CPU"]
    keys = (
        "Keys (attached, read-only: p, c and a belong to the run's process)"
        if read_only
        else "Keys"
    )
    memory = [("memory", f"GPU: {_legend(gpu)}"), ("", f"CPU: {_legend(cpu)}")]
    lines = [
        f"[b]{keys}[/b]",
        *_rows((READ_ONLY_KEYS if read_only else KEYS) + COMMON_KEYS),
        "",
        "[b]Worker panels[/b]",
        *_rows(PANEL_ROWS[:2] + memory + PANEL_ROWS[2:]),
        *(escape(line) for line in render.wrap_words(COMPACT_NOTE, HELP_WIDTH)),
        "",
        *_paragraph("Progress", f"{_legend(render.PROGRESS_LEGEND)}; {PROGRESS_NOTE}"),
        "",
        *_paragraph("Calls", f"{render.CALL_RULE}. {CALL_NOTE}"),
    ]
    return "\n".join(lines)


PROGRESS_NOTE = (
    "a total with ~ is an estimate (from the chunks prepared so far) until every input is prepared"
)
CALL_NOTE = (
    "max P(virus) is the best single frame's score, so a sequence can score high and still be "
    "called others (docs/outputs.md)."
)


class QuestionDialog(ModalScreen[Answer]):
    """A dialog that asks one thing: its bold title, what answering means, its own fields, then
    its buttons in a row."""

    HEADING: ClassVar[str]
    MEANING: ClassVar[str]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]{self.HEADING}[/b]", classes="dialog-title")
            yield Static(self.MEANING)
            yield from self.fields()
            with Horizontal(classes="dialog-buttons"):
                yield from self.buttons()

    def fields(self) -> ComposeResult:
        yield from ()

    def buttons(self) -> ComposeResult:
        raise NotImplementedError


class ConfirmQuitScreen(QuestionDialog[bool]):
    """Stop the run? (the run stays resumable)."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Stop the run"),
        Binding("n,escape,q", "answer(False)", "Keep running"),
    ]

    HEADING = "Stop the run?"
    MEANING = (
        "The shards in flight finish and are kept; nothing else starts. "
        "Rerun the same command to resume where it stopped."
    )

    def buttons(self) -> ComposeResult:
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


class AddInputScreen(QuestionDialog[Path | None]):
    """Ask for a FASTA or FASTQ path; the run validates its contents and queues it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, cwd: Path | None = None) -> None:
        super().__init__()
        self.cwd = cwd

    HEADING = "Add an input"
    MEANING = (
        "A FASTA or FASTQ file (plain, .gz, .bz2, .xz or .zst). It joins the job queue and "
        "shares the warm workers."
    )

    def fields(self) -> ComposeResult:
        yield Input(placeholder="path/to/reads.fa.gz", id="add-path")
        yield Static("", id="add-error")

    def buttons(self) -> ComposeResult:
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
        with VerticalScroll(classes="dialog help-dialog"):
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
