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
        """Build this job's files and report.html (every job finished so far); return
        report.html and this job's files, report.html first."""
        from virnucpro_tui.report.build import ReportOptions, build_report

        options = ReportOptions(region_gap=self.region_gap, only_job=finished.job)
        written = build_report(finished.run_dir, options, finished.finished_jobs)
        return written  # report.html, then this job's files
