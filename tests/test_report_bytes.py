"""The report's files stay byte for byte what they were before its reading was made faster
(docs/benchmarks.md#the-report): a synthetic finished run with every case the readers meet
(many chunks and frames, chunks without a stop-free frame, sequences without any, soft-masked
wrapped records with and without descriptions), built at two region gaps and compared with
digests recorded from the first, unoptimised version of the report."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest

from virnucpro_tui.core.chunking import chunk_spans
from virnucpro_tui.core.outputs import ConsensusBuilder, Prediction, SequenceSummary
from virnucpro_tui.report.build import ReportOptions, build_report
from virnucpro_tui.report.data import load_run
from virnucpro_tui.report.scan import ScanSinks, TrackPicker, scan_job
from virnucpro_tui.testing.finished_run import job_files, write_manifest

FRAMES = ("F1", "F2", "F3", "R1", "R2", "R3")
CHUNK_LENGTH = 500


def sequence_rows(rng: random.Random, rid: str, length: int) -> tuple[list[Prediction], str]:
    preds = []
    for k in range(len(chunk_spans(length, CHUNK_LENGTH))):
        for frame in rng.sample(FRAMES, rng.choice((0, 0, 1, 2, 6))):
            p = np.float32(rng.betavariate(0.6, 0.9))
            preds.append(Prediction(f"{rid}_chunk_{k + 1}{frame}", np.float32(1 - p), p))
    chunks = ConsensusBuilder().add_all(preds).chunks
    summary = SequenceSummary(
        rid, length, len(chunk_spans(length, CHUNK_LENGTH)), len(chunks), len(preds)
    )
    summary.viral_chunks = sum(c.is_virus for c in chunks.values())
    summary.max_virus_score = max((p.p_virus for p in preds), default=None)
    return preds, summary.row()


def make_run(root: Path, sequences: int = 400, seed: int = 5) -> None:
    rng = random.Random(seed)
    root.mkdir()
    with job_files(root, "contigs.fa") as (fa, out, summary):
        for i in range(sequences):
            rid, length = f"seq{i}", rng.choice((90, 500, 501, 1400, 3200, 6000))
            seq = "".join(rng.choice("ACGTacgtN") for _ in range(length))
            fa.write(f">{rid} sample=A  note {i}\n" if i % 3 else f">{rid}\n")
            fa.writelines(seq[j : j + 60] + "\n" for j in range(0, length, 60))
            preds, row = sequence_rows(rng, rid, length)
            out.writelines(p.row() for p in preds)
            summary.write(row)
    entry = {
        "job": "contigs",
        "path": str(root / "contigs.fa"),
        "sha256": "0" * 64,
        "records": sequences,
    }
    manifest = {
        "format": "virnucpro-tui-run/1",
        "status": "complete",
        "command": ["test"],
        "inputs": [entry],
        "settings": {"chunk_length": CHUNK_LENGTH},
        "models": {},
        "demo": False,
        "devices": [],
        "versions": {},
    }
    write_manifest(root, manifest)
    (root / "events.jsonl").write_text("")


def digest(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:16]


def picked_digest(root: Path, gap: int) -> str:
    """What the figures and the page are drawn from: the counts, the histogram, the tracks."""
    source = load_run(root)
    with open(root / "t.tsv", "w") as tsv, open(root / "t.bed", "w") as bed:
        sinks = ScanSinks(tsv, bed, TrackPicker(), TrackPicker(100))
        stats = scan_job(source.blocks(source.jobs[0]), CHUNK_LENGTH, gap, sinks)
    picked = (vars(stats), [repr(t) for t in sinks.table.tracks()])
    return digest(repr(picked))


EXPECTED = {
    0: {
        "viral_sequences.fa": "de45555e8fa8ada7",
        "viral_regions.tsv": "d6e8db0f716d47d9",
        "viral_regions.bed": "12fcb2b716b02445",
        "picked": "5599dd9edfe1c00f",
    },
    2: {
        "viral_sequences.fa": "de45555e8fa8ada7",
        "viral_regions.tsv": "6325c7c616347e71",
        "viral_regions.bed": "52170fbd4d838233",
        "picked": "a40497d283971bb8",
    },
}


@pytest.mark.parametrize("gap", [0, 2])
def test_the_report_files_are_byte_for_byte_those_of_the_first_version(tmp_path, gap) -> None:
    root = tmp_path / "run"
    make_run(root)
    out = tmp_path / "report"
    build_report(root, ReportOptions(out=out, region_gap=gap))
    got = {
        name: digest((out / name).read_bytes())
        for name in ("viral_sequences.fa", "viral_regions.tsv", "viral_regions.bed")
    }
    got["picked"] = picked_digest(root, gap)
    assert got == EXPECTED[gap]
