"""What the orchestrator calls when a job's outputs are final: a front end's hook (the cli wires
the report builder), so the run layer never imports a front end (docs/architecture.md#layers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class FinishedJob:
    """A job whose outputs were just renamed into place."""

    run_dir: Path
    job: str
    out_dir: Path
    finished_jobs: dict[str, float]  # every job finished so far in this run -> its seconds


class JobFinishedHook(Protocol):
    def __call__(self, finished: FinishedJob) -> list[Path]:
        """Build more files from the job's outputs; return the files written, the most
        important first. Raising fails only the extra files (the run warns and goes on)."""
        ...
