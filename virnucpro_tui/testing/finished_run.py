"""A finished run directory written from synthetic results, laid out as ``run`` leaves a run of
one input (its outputs at the top): for the report's byte tests and
``scripts/report_benchmark.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from virnucpro_tui.core import outputs


@contextmanager
def job_files(root: Path, fasta_name: str) -> Iterator[tuple[TextIO, TextIO, TextIO]]:
    """The input FASTA ``root/fasta_name``, ``prediction_results.txt`` and
    ``sequence_summary.tsv``, open for writing, the last two with their headers written."""
    with (
        (root / fasta_name).open("w") as fasta,
        (root / outputs.PREDICTION_FILE).open("w") as predictions,
        (root / outputs.SUMMARY_FILE).open("w") as summary,
    ):
        predictions.write(outputs.PREDICTION_HEADER)
        summary.write(outputs.SUMMARY_HEADER)
        yield fasta, predictions, summary


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """``manifest.json``, and ``provenance.json``: the manifest with its one input."""
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "provenance.json").write_text(json.dumps({**manifest, "input": manifest["inputs"][0]}))
