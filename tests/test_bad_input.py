"""Bad input (docs/reliability.md#bad-input): exit code 2, one line naming the file, the record and the problem,
no traceback, and nothing already computed is lost."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.helpers import one_line
from virnucpro_tui.cli import main

CASES = {
    # name: (file bytes, file name, words the message must contain)
    "missing": (None, "absent.fa", ["absent.fa", "not found"]),
    "empty": (b"", "empty.fa", ["empty.fa", "empty"]),
    "blank_lines": (b"\n\n  \n", "blank.fa", ["blank.fa", "no sequences"]),
    "not_fasta": (
        b"sample\tread_count\nA\t12\n",
        "table.fa",
        ["table.fa", "not a FASTA or FASTQ file"],
    ),
    "binary": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "image.fa",
        ["image.fa", "not a FASTA or FASTQ file"],
    ),
    "protein": (
        b">p1 kinase\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\n",
        "prot.fa",
        ["prot.fa", "record 1", "'p1'", "protein"],
    ),
    "protein_iupac_only": (
        b">ok\nACGT\n>p2\nMKHHWWYYDDSSRRKK\n",
        "p2.fa",
        ["p2.fa", "record 2", "'p2'", "protein"],
    ),
    "empty_record": (
        b">a\nACGTACGT\n>b desc\n>c\nACGT\n",
        "er.fa",
        ["er.fa", "record 2", "'b'", "empty record"],
    ),
    "no_id": (b">\nACGTACGT\n", "noid.fa", ["noid.fa", "record 1", "no sequence id"]),
    "duplicate": (
        b">x\nACGT\n>y\nAAAA\n>x second\nCCCC\n",
        "dup.fa",
        ["dup.fa", "record 3", "'x'", "duplicate", "record 1"],
    ),
    "bad_char": (b">a\nACGT1ACGT\n", "char.fa", ["char.fa", "record 1", "'1'", "position 5"]),
    "zero_byte_gz": (b"", "zero.fa.gz", ["zero.fa.gz", "empty"]),
    "corrupt_gz": (
        gzip.compress(b">a\n" + b"ACGT" * 5000)[:60] + b"garbage-garbage",
        "bad.fa.gz",
        ["bad.fa.gz", "unreadable"],
    ),
    "gz_of_text": (
        gzip.compress(b"this is not fasta\n"),
        "text.fa.gz",
        ["text.fa.gz", "not a FASTA or FASTQ file"],
    ),
}


def write_case(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    data, filename, words = CASES[name]
    path = tmp_path / filename
    if data is not None:
        path.write_bytes(data)
    return path, words


@pytest.mark.parametrize("name", sorted(CASES))
def test_prepare_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    path, words = write_case(tmp_path, name)
    out = tmp_path / "out"
    assert main(["prepare", str(path), "--length", "500", "--out", str(out)]) == 2
    one_line(capsys, words)
    assert not out.exists()


@pytest.mark.parametrize("name", ["protein", "duplicate", "corrupt_gz", "missing", "empty_record"])
def test_run_rejects_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path, words = write_case(tmp_path, name)
    out = tmp_path / "run"
    code = main(["run", str(path), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1"])
    assert code == 2
    one_line(capsys, words)
    assert not out.exists()


def test_bad_second_input_leaves_earlier_results_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    earlier = out / "prediction_results.txt"
    earlier.write_text("Sequence_ID\tPrediction\tscore1\tscore2\nold\tvirus\t0.1\t0.9\n")
    good = tmp_path / "good.fa"
    good.write_text(">g\n" + "ATG" * 100 + "\n")
    bad, words = write_case(tmp_path, "duplicate")
    assert main(["run", str(good), str(bad), "--out", str(out), "--demo", "--no-ui"]) == 2
    one_line(capsys, words)
    assert earlier.read_text().endswith("old\tvirus\t0.1\t0.9\n")


@pytest.mark.parametrize("length", ["250", "0"])
def test_length_other_than_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], length: str
) -> None:
    good = tmp_path / "good.fa"
    good.write_text(">g\nACGTACGTAC\n")
    assert main(["prepare", str(good), "--length", length, "--out", str(tmp_path / "o")]) == 2
    one_line(capsys, ["--length", length])


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--length", "five"])
    assert exc.value.code == 2
    assert "--length: invalid int value: 'five'" in capsys.readouterr().err
    # a missing INPUT or --out is named by the command itself, also exit 2 (test_cli.py)
    assert main(["run", "--length", "500"]) == 2
    assert "no INPUT and no --out given" in capsys.readouterr().err
