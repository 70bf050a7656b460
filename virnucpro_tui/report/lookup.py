"""One sequence's track read back from a finished job's outputs, for the dashboard's Results tab
(streamed: a sequence deep in a big output is found in constant memory)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from virnucpro_tui.core.regions import sequence_regions
from virnucpro_tui.core.result_blocks import read_result_blocks
from virnucpro_tui.core.results import ResultsError
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
            for block in read_result_blocks(job_dir):
                if sequence_id in block.ids:
                    result = block.result(block.ids.index(sequence_id))
                    regions = sequence_regions(
                        sequence_id, result.summary.length, chunk_length, result.chunks
                    )
                    return make_track(result, chunk_length, regions)
        except (OSError, ResultsError, UnicodeDecodeError):
            continue
    return None
