"""``run`` builds the report at the end of each job: the hook the cli gives the orchestrator
(``run/hooks.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from virnucpro_tui.run.hooks import FinishedJob


@dataclass(frozen=True)
class ReportHook:
    region_gap: int = 0

    def __call__(self, finished: FinishedJob) -> list[Path]:
        """Rebuild the report of every job finished so far; return report.html and this job's
        files (report.html first)."""
        from virnucpro_tui.report.build import ReportOptions, build_report

        written = build_report(
            finished.run_dir, ReportOptions(region_gap=self.region_gap), finished.finished_jobs
        )
        mine = (finished.run_dir.resolve(), finished.out_dir.resolve())
        return [
            p
            for p in written
            if p.parent.resolve() in mine and (p == written[0] or p.parent.resolve() == mine[1])
        ]
