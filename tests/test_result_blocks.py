"""Reading a job's results a block at a time as columns (core/result_blocks.py): the same
sequences, frames and chunk calls as reading the files row by row, at any block size; every
corrupt file refused with a line that names what is wrong."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.test_report_bytes import CHUNK_LENGTH, EXPECTED, digest, make_run
from virnucpro_tui.core import result_blocks
from virnucpro_tui.core.outputs import PREDICTION_FILE, SUMMARY_FILE, read_prediction_results
from virnucpro_tui.core.regions import sequence_regions
from virnucpro_tui.core.result_blocks import blocks_from_results, read_result_blocks
from virnucpro_tui.core.results import (
    ResultsError,
    SequenceResult,
    chunk_calls,
    parse_summary_row,
)
from virnucpro_tui.errors import InputError
from virnucpro_tui.report.build import ReportOptions, build_report
from virnucpro_tui.report.lookup import find_track
from virnucpro_tui.report.scan import make_track


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blocks") / "run"
    make_run(root)
    return root


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Blocks of 7 sequences or 40 frames: every boundary case of the cut is met."""
    monkeypatch.setattr(result_blocks, "BLOCK_SEQUENCES", 7)
    monkeypatch.setattr(result_blocks, "BLOCK_FRAMES", 40)


def row_by_row(root: Path) -> Iterator[SequenceResult]:
    """The reference: each summary row parsed alone, its frames, the published consensus."""
    lines = (root / SUMMARY_FILE).read_text().splitlines(keepends=True)[1:]
    frames = iter(read_prediction_results(root / PREDICTION_FILE))
    for line in lines:
        summary = parse_summary_row(line)
        preds = list(itertools.islice(frames, summary.frames))
        yield SequenceResult(summary, preds, chunk_calls(preds))


def block_results(root: Path) -> list[SequenceResult]:
    return [block.result(i) for block in read_result_blocks(root) for i in range(len(block))]


@pytest.mark.parametrize("blocks", ["one block", "small blocks"])
def test_the_blocks_hold_what_the_files_say_row_by_row(run_dir, request, blocks) -> None:
    if blocks == "small blocks":
        request.getfixturevalue("small_blocks")
    expected = list(row_by_row(run_dir))
    got = block_results(run_dir)
    assert len(got) == len(expected) == 400
    assert got == expected
    assert sum(r.summary.call == "virus" for r in got) > 50  # the check is not vacuous
    assert any(len(r.chunks) > 3 for r in got) and any(not r.frames for r in got)


def test_blocks_made_from_objects_are_the_blocks_read(run_dir, small_blocks) -> None:
    """``--partial`` packs its objects into blocks: the same columns as the files give."""
    read = list(read_result_blocks(run_dir))
    packed = list(blocks_from_results(row_by_row(run_dir), size=7))
    assert [len(b) for b in packed][:3] == [7, 7, 7]
    flat = [b.result(i) for b in packed for i in range(len(b))]
    assert flat == block_results(run_dir)
    assert np.array_equal(
        np.concatenate([b.calls for b in packed]), np.concatenate([b.calls for b in read])
    )


@pytest.mark.parametrize("gap", [0, 2])
def test_small_blocks_write_the_same_bytes(tmp_path, small_blocks, gap) -> None:
    root = tmp_path / "run"
    make_run(root)
    out = tmp_path / "report"
    build_report(root, ReportOptions(out=out, region_gap=gap))
    for name in ("viral_sequences.fa", "viral_regions.tsv", "viral_regions.bed"):
        assert digest((out / name).read_bytes()) == EXPECTED[gap][name], name


def test_a_track_looked_up_is_the_track_of_its_objects(run_dir, small_blocks) -> None:
    results = {r.summary.id: r for r in row_by_row(run_dir)}
    for sid in ("seq0", "seq137", "seq399"):
        r = results[sid]
        regions = sequence_regions(sid, r.summary.length, CHUNK_LENGTH, r.chunks)
        assert find_track([run_dir], sid) == make_track(r, CHUNK_LENGTH, regions)
    assert find_track([run_dir], "seq400") is None


def edit_lines(path: Path, n: int, line: str | None) -> None:
    """Line ``n`` (0-based, the header is 0) replaced by ``line``, or removed when None."""
    lines = path.read_text().splitlines(keepends=True)
    lines[n : n + 1] = [] if line is None else [line]
    path.write_text("".join(lines))


def with_field(line: str, k: int, value: str) -> str:
    fields = line.rstrip("\n").split("\t")
    fields[k] = value
    return "\t".join(fields) + "\n"


def a_frame(root: Path, viral: bool | None = None) -> tuple[str, int, str]:
    """A sequence after the first block of 7 with frames (with ``viral``: whose first chunk
    with frames is, or is not, viral), the line of its first frame, and that line."""
    lines = (root / PREDICTION_FILE).read_text().splitlines(keepends=True)
    for result in itertools.islice(row_by_row(root), 20, None):
        if not result.frames:
            continue
        first = result.frames[0].frame_id
        chunk = int(first[len(result.summary.id) + 7 : -2]) - 1
        if viral is None or result.chunks[chunk].is_virus == viral:
            n = next(n for n, line in enumerate(lines) if line.startswith(first + "\t"))
            return result.summary.id, n, lines[n]
    raise AssertionError("no such sequence in the test run")


def corrupt_summary(root: Path, case: str) -> str:
    path = root / SUMMARY_FILE
    line = path.read_text().splitlines(keepends=True)[31]  # seq30, line 32
    if case == "a number that is not one":
        edit_lines(path, 31, with_field(line, 1, "1x"))
        return "sequence_summary.tsv: line 32: a number column holds 'seq30"
    if case == "a call that disagrees":
        call = line.rstrip("\n").rsplit("\t", 1)[1]
        edit_lines(path, 31, with_field(line, 7, "others" if call != "others" else "virus"))
        return "line 32: seq30: call '(virus|others)' disagrees with its chunk counts"
    if case == "a row of 7 columns":
        edit_lines(path, 31, line.split("\t", 1)[1])
        return "line 32: 7 columns, expected 8"
    assert case == "a negative count"
    edit_lines(path, 31, with_field(line, 1, "-5"))
    return "line 32: a negative count"


def corrupt_frames(root: Path, case: str) -> str:
    path = root / PREDICTION_FILE
    sid, n, line = a_frame(root, viral=False if case == "a score flipped" else None)
    fid, label, _, _ = line.rstrip("\n").split("\t")
    if case == "a frame missing":
        edit_lines(path, n, None)
        return f"{sid}: its frames are missing or out of order"
    if case == "a frame too many":
        path.write_text(path.read_text() + line)
        return "more frames than the summary's sequences hold"
    if case == "the frames cut short":
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
        return "its frames are missing or out of order"
    if case == "a malformed frame row":
        edit_lines(path, n, line.rsplit("\t", 1)[0] + "\n")
        return "prediction_results.txt: a malformed row"
    if case == "a score that is not a number":
        edit_lines(path, n, with_field(line, 3, "x"))
        return "prediction_results.txt: a malformed row"
    if case == "a chunk past the last":
        edit_lines(path, n, with_field(line, 0, f"{sid}_chunk_99{fid[-2:]}"))
        return f"{sid}: a frame of a chunk past its last"
    if case == "chunk 0":
        edit_lines(path, n, with_field(line, 0, f"{sid}_chunk_0{fid[-2:]}"))
        return f"'{sid}_chunk_0' is not a chunk id of this tool"
    assert case == "a score flipped"  # a chunk that was not viral is now
    edit_lines(path, n, f"{fid}\t{label}\t0.0\t1.0\n")
    return f"{sid}: its chunk counts disagree with its frames"


SUMMARY_CASES = [
    "a number that is not one",
    "a call that disagrees",
    "a row of 7 columns",
    "a negative count",
]
FRAME_CASES = [
    "a frame missing",
    "a frame too many",
    "the frames cut short",
    "a malformed frame row",
    "a score that is not a number",
    "a chunk past the last",
    "chunk 0",
    "a score flipped",
]


@pytest.mark.parametrize("case", SUMMARY_CASES + FRAME_CASES)
def test_a_corrupt_results_file_is_refused_with_what_is_wrong(tmp_path, small_blocks, case) -> None:
    root = tmp_path / "run"
    make_run(root)
    message = corrupt_summary(root, case) if case in SUMMARY_CASES else corrupt_frames(root, case)
    with pytest.raises(ResultsError, match=message):
        list(read_result_blocks(root))


def fasta_records(path: Path) -> list[str]:
    return [">" + r for r in path.read_text().split(">")[1:]]


INPUT_CASES = {
    "a record shortened": (
        lambda records: [*records[:30], records[30].rstrip("\n")[:-5] + "\n", *records[31:]],
        r"job contigs: record 31 of the input is 'seq30' of \d+ bases; the run scored 'seq30' of",
    ),
    "a record missing at the end": (
        lambda records: records[:-1],
        "job contigs: the input ends before sequence 'seq399'",
    ),
    "a record more": (
        lambda records: [*records, ">extra\nACGT\n"],
        "job contigs: the input holds more records than the run scored",
    ),
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_an_input_that_no_longer_matches_the_run_writes_nothing(
    tmp_path, small_blocks, case
) -> None:
    root = tmp_path / "run"
    make_run(root)
    fasta = root / "contigs.fa"
    edit, message = INPUT_CASES[case]
    fasta.write_text("".join(edit(fasta_records(fasta))))
    out = tmp_path / "report"
    with pytest.raises(InputError, match=message):
        build_report(root, ReportOptions(out=out))
    assert not out.exists() or not any(out.rglob("*"))
