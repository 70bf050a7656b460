"""``virnucpro-tui models download`` on the terminal: Rich progress bars (size, speed, ETA) for the
transfers of ``virnucpro_tui.models.download``, then one line per file
(docs/models.md#downloading-the-models)."""

from __future__ import annotations

import argparse
import sys
from types import TracebackType

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from virnucpro_tui.errors import InputError
from virnucpro_tui.models.download import MODELS, DownloadReport, download_models
from virnucpro_tui.models.transfer import DownloadError


class RichTransferProgress:
    """A ``TransferProgress`` drawn as Rich bars; checksum passes vanish when done."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<40}"),
            BarColumn(bar_width=24),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.started = False

    def __enter__(self) -> RichTransferProgress:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if not self.started:
            return
        if self.tasks:
            self.progress.stop()
        else:  # only checksum passes, all gone: leave no trace (not even a blank line)
            self.progress.live.transient = True
            self.progress.live.stop()

    def begin(self, task: str, total: int | None, done: int) -> None:
        if not self.started:  # nothing is drawn when nothing is transferred or verified
            self.progress.start()
            self.started = True
        if task in self.tasks:  # a retry: the same bar, restarted from what is kept
            self.progress.reset(self.tasks[task], total=total, completed=done)
        else:
            self.tasks[task] = self.progress.add_task(task, total=total, completed=done)

    def advance(self, task: str, nbytes: int) -> None:
        self.progress.advance(self.tasks[task], nbytes)

    def end(self, task: str) -> None:
        if task.startswith("verify ") and task in self.tasks:
            self.progress.remove_task(self.tasks.pop(task))


def selected_models(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise InputError(f"unknown model(s) {', '.join(unknown)}: choose among {', '.join(MODELS)}")
    return [m for m in MODELS if m in names] if names else list(MODELS)


def report_lines(report: DownloadReport) -> list[str]:
    lines = []
    for o in report.outcomes:
        size = filesize.decimal(o.size) if o.size is not None else ""
        lines.append(f"{o.item.name:<40} {o.status:<10} {size:>10}  {o.detail}")
    if report.offline:
        lines.append(f"offline ({report.offline}): the network was not used")
    layout = report.layout
    if layout.dest is None:
        lines.append(
            f"model files go to the standard caches ({layout.esm_dir}, {layout.dnabert_dir}, "
            f"{layout.classifier_dir}), where `virnucpro-tui run` finds them "
            "(`virnucpro-tui models locate` shows what a run uses)"
        )
    else:
        lines.append(f"model files go to {layout.dest}")
        lines.extend(f"model paths written to {path}" for path in report.configs)
        if report.config_hint:
            lines.append(report.config_hint)
    lines.append(f"checksums: {layout.manifest}")
    return lines


def main(args: argparse.Namespace) -> int:
    models = selected_models(args.models)
    with RichTransferProgress(Console(stderr=True)) as progress:
        report = download_models(
            models, args.dest, offline=args.offline, progress=progress, mirror=args.mirror
        )
    print("\n".join(report_lines(report)))
    sys.stdout.flush()
    if report.missing:
        names = ", ".join(o.item.name for o in report.missing)
        raise DownloadError(
            f"offline ({report.offline}): missing {names}; run `virnucpro-tui models download` "
            "where the network is reachable (or copy the files in)"
        )
    return 0
