"""One sequence's track read back from a finished job's outputs, for the dashboard's Results tab
(streamed: a sequence deep in a big output is found in constant memory)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from virnucpro_tui.core.regions import sequence_regions
from virnucpro_tui.core.results import ResultsError, read_job_results
from virnucpro_tui.report.scan import Track, make_track
from virnucpro_tui.run.rundir import PROVENANCE


def chunk_length_of(job_dir: Path) -> int:
    try:
        settings = json.loads((job_dir / PROVENANCE).read_text(encoding="utf-8"))["settings"]
        return int(settings["chunk_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 500


def find_track(job_dirs: Iterable[Path], sequence_id: str) -> Track | None:
    """The track of ``sequence_id`` in the first of ``job_dirs`` that holds it; None if none
    does (or their outputs cannot be read)."""
    for job_dir in job_dirs:
        chunk_length = chunk_length_of(job_dir)
        try:
            for result in read_job_results(job_dir):
                if result.summary.id == sequence_id:
                    regions = sequence_regions(
                        sequence_id, result.summary.length, chunk_length, result.chunks
                    )
                    return make_track(result, chunk_length, regions)
        except (OSError, ResultsError, UnicodeDecodeError):
            continue
    return None
