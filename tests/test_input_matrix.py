"""The bad- and odd-input matrix of docs/reliability.md (docs/reliability.md): what the user gets for
each case. tests/test_bad_input.py covers the rejected files (missing, empty, not FASTA, protein,
empty record, duplicate ids, unreadable gzip, ...); this file adds the cases below, and the
inputs that must work: CRLF, Windows-1252 headers, huge headers, hostile ids, RNA, lower case,
IUPAC codes, a 10 Mbp sequence."""

from __future__ import annotations

import gzip
import io
import itertools
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import cli_env, events, one_line, orf, prepare_rejects
from virnucpro_tui.cli import main
from virnucpro_tui.core.chunking import chunk_sequence
from virnucpro_tui.core.fasta import FastaRecord, iter_records, scan_input
from virnucpro_tui.core.outputs import (
    HIGHESTSCORE_FILE,
    PREDICTION_FILE,
    ConsensusBuilder,
    Prediction,
    chunk_key,
    read_prediction_results,
)
from virnucpro_tui.core.prepare import intermediate_paths, prepare_records
from virnucpro_tui.core.shards import ShardResult, shard_path, write_shard_result
from virnucpro_tui.core.translation import identify_frames_reference
from virnucpro_tui.run import assemble

HOSTILE_IDS = (
    "../../escaped",
    "..",
    ".",
    "/etc/passwd",
    "a/b/../../c",
    "$(touch${IFS}pwned)",
    "`touch${IFS}pwned2`",
    "x;touch${IFS}pwned3;|&<>*?'\"!#~%",
    "-rf",
    "C:\\Windows\\evil",
)
LONG_ID = "L" * 100_000  # a 100 kB header that is all id


# -- more rejected inputs (exit 2, one line naming the file, nothing written) ----------------

REJECTED = {
    # name: (file bytes, file name, words the message must contain)
    "gzip_of_nothing": (gzip.compress(b""), "nothing.fa.gz", ["nothing.fa.gz", "no sequences"]),
    "truncated_gzip": (
        gzip.compress(b">a\n" + b"ACGT" * 50_000)[:-30],
        "cut.fa.gz",
        ["cut.fa.gz", "unreadable"],
    ),
    "sequence_before_header": (
        b"ACGTACGT\n>a\nACGT\n",
        "nohead.fa",
        ["nohead.fa", "not a FASTA or FASTQ file"],
    ),
    "tab_in_sequence": (
        b">a\nACGT\tACGT\n",
        "tab.fa",
        ["tab.fa", "record 1", "'a'", "'\\t'", "position 5"],
    ),
    "nul_in_sequence": (b">a\nAC\x00GT\n", "nul.fa", ["nul.fa", "record 1", "invalid character"]),
    "space_only_header": (b">   \nACGT\n", "sp.fa", ["sp.fa", "record 1", "no sequence id"]),
    "header_only": (
        b">lonely description\n",
        "lonely.fa",
        ["lonely.fa", "'lonely'", "empty record"],
    ),
    "cp1252_duplicate": (
        b">caf\xe9\nACGT\n>caf\xe9 again\nACGT\n",
        "dup1252.fa",
        ["dup1252.fa", "'caf\u00e9'", "duplicate"],
    ),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_more_rejected_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    prepare_rejects(tmp_path, capsys, *REJECTED[name])


def test_a_directory_as_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", str(tmp_path), "--length", "500", "--out", str(tmp_path / "o")]) == 2
    assert "is a directory" in one_line(capsys)


# -- inputs that must work, and give what the published rules say ----------------------------


def prepared(path: Path, out: Path, length: int = 500) -> dict[str, bytes]:
    assert main(["prepare", str(path), "--length", str(length), "--out", str(out)]) == 0
    return {p.name.split("_", 1)[1]: p.read_bytes() for p in intermediate_paths(path, out, length)}


def test_crlf_reads_exactly_like_lf(tmp_path: Path) -> None:
    rng = random.Random(1)
    text = "".join(f">r{i} some description\n{orf(900, rng)}\n" for i in range(5))
    lf, crlf, cr = tmp_path / "lf.fa", tmp_path / "crlf.fa", tmp_path / "cr.fa"
    lf.write_bytes(text.encode())
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    cr.write_bytes(text.replace("\n", "\r").encode())  # classic Mac line ends
    expected = prepared(lf, tmp_path / "o1")
    assert prepared(crlf, tmp_path / "o2") == expected
    assert prepared(cr, tmp_path / "o3") == expected
    assert b"\r" not in b"".join(expected.values())


BOM = b"\xef\xbb\xbf"


def bom_warning(path: Path) -> str:
    return (
        f"{path}: the file begins with a UTF-8 byte-order mark (as some Windows editors save "
        "files); it was ignored, the records are read as without it"
    )


def with_and_without_bom(root: Path) -> tuple[Path, Path, Path]:
    """The same records as a plain file, a file with a byte-order mark, and its gzip (CRLF, as
    a Windows editor saves them)."""
    rng = random.Random(5)
    text = "".join(f">r{i} café\r\n{orf(700, rng)}\r\n" for i in range(4)).encode()
    root.mkdir(parents=True, exist_ok=True)
    plain, bom, bom_gz = root / "plain.fa", root / "bom.fa", root / "bomgz.fa.gz"
    plain.write_bytes(text)
    bom.write_bytes(BOM + text)
    bom_gz.write_bytes(gzip.compress(BOM + text))
    return plain, bom, bom_gz


def test_byte_order_mark_is_dropped_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, bom, bom_gz = with_and_without_bom(tmp_path / "in")
    expected = prepared(plain, tmp_path / "o1")
    assert capsys.readouterr().err == ""
    for path, out in ((bom, tmp_path / "o2"), (bom_gz, tmp_path / "o3")):
        assert prepared(path, out) == expected
        assert one_line(capsys) == f"virnucpro-tui: warning: {bom_warning(path)}"
        assert list(iter_records(path)) == list(iter_records(plain))
        assert scan_input(path, 500).warnings == [bom_warning(path)]
    assert scan_input(plain, 500).warnings == []


def test_windows_1252_header_is_read_as_windows_1252(tmp_path: Path) -> None:
    path = tmp_path / "latin.fa"
    path.write_bytes(
        b">caf\xe9_\x93quoted\x94 cr\xe8me br\xfbl\xe9e\nACGTACGTAC\n>na\xefve\nACGT\n"
    )
    records = list(iter_records(path))
    assert [r.id for r in records] == ["café_\u201cquoted\u201d", "naïve"]
    assert records[0].title == "café_\u201cquoted\u201d crème brûlée"


def test_utf8_header_stays_utf8(tmp_path: Path) -> None:
    path = tmp_path / "utf8.fa"
    path.write_text(">ésope_λ_病毒 δ\nACGT\n", encoding="utf-8")
    assert next(iter_records(path)).id == "ésope_λ_病毒"


def test_rna_and_lower_case_follow_the_published_rules(tmp_path: Path) -> None:
    """Case is kept in the chunks and upper-cased for translation; U is not T: codons with U
    translate to nothing (docs/architecture.md#the-scientific-contract)."""
    rng = random.Random(2)
    dna = orf(600, rng)
    rna = dna.replace("T", "U")
    path = tmp_path / "mixed.fa"
    path.write_text(f">lower\n{dna.lower()}\n>rna\n{rna}\n")
    files = prepared(path, tmp_path / "o")
    chunked = files["chunked500.fa"].decode()
    assert dna.lower()[:60] in chunked and rna[:60] in chunked  # kept as given
    records = {r.id: r for r in prepare_records(iter_records(path), 500)}
    upper = [f for chunk in records["lower"].frames for f in chunk]
    assert upper and all(f.nucleotide == f.nucleotide.upper() for f in upper)
    for (cid, seq), frames in zip(records["rna"].chunks, records["rna"].frames, strict=True):
        assert frames == identify_frames_reference(cid, seq)
    assert scan_input(path, 500).rna_records == ["rna"]


def test_iupac_codes_are_accepted_and_their_codons_dropped(tmp_path: Path) -> None:
    seq = "ATG" + "NNN" + "GCT" + "RYK" + "AAA" * 30 + "MSWBDHV" + "GGC" * 20 + "-" * 3 + "CCG" * 10
    path = tmp_path / "iupac.fa"
    path.write_text(f">amb\n{seq}\n")
    record = next(prepare_records(iter_records(path), 500))
    frames = record.frames[0]
    assert frames == identify_frames_reference("amb_chunk_1", seq)
    f1 = next(f for f in frames if f.id.endswith("F1"))
    assert f1.protein.startswith("MAKKK") and "X" not in f1.protein


def test_hostile_and_huge_ids_never_touch_the_filesystem_and_come_out_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    path = tmp_path / "in" / "hostile.fa"
    path.parent.mkdir()
    path.write_text("".join(f">{rid} x\n{orf(600, rng)}\n" for rid in (*HOSTILE_IDS, LONG_ID)))
    monkeypatch.chdir(tmp_path / "in")  # relative ids like ../../escaped would land near here
    files = prepared(path, tmp_path / "in" / "out")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "in", "in/hostile.fa", "in/out", *sorted(f"in/out/hostile_{k}" for k in files)
    ]  # fmt: skip
    protein = files["identified_protein.faa"].decode()
    for rid in (*HOSTILE_IDS, LONG_ID):
        assert f">{rid}_chunk_1F1\n" in protein


# -- one real run: odd but valid inputs, LF and CRLF side by side --------------------------------


def odd_fasta(newline: str) -> bytes:
    rng = random.Random(4)
    parts = [
        b">plain ordinary\n" + orf(900, rng).encode(),
        b">caf\xe9_latin Windows-1252 header\n" + orf(600, rng).encode(),
        b">lower\n" + orf(600, rng).lower().encode(),
        b">rna\n" + orf(600, rng).replace("T", "U").encode(),
        b">iupac\n" + (orf(300, rng) + "NNNRYKMSWBDHV" + orf(300, rng)).encode(),
        *(f">{rid} {'d' * 50}\n{orf(600, rng)}".encode() for rid in HOSTILE_IDS),
        f">{LONG_ID}\n{orf(600, rng)}".encode(),
    ]
    return b"".join(p.replace(b"\n", newline.encode()) + newline.encode() for p in parts)


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory, demo_models) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("odd")
    (root / "in").mkdir()
    lf, crlf = root / "in" / "odd.fa", root / "in" / "odd_crlf.fa"
    lf.write_bytes(odd_fasta("\n"))
    crlf.write_bytes(odd_fasta("\r\n"))
    out = root / "run"
    r = subprocess.run(
        [sys.executable, "-m", "virnucpro_tui", "run", str(lf), str(crlf), "--out", str(out), "--demo",
         "--no-ui", "--devices", "cpu:1", "--shard-size", "32"],
        env=cli_env(demo_models.root), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, cwd=root / "in",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return root, out


@pytest.mark.slow
def test_run_crlf_outputs_identical_to_lf(odd_run: tuple[Path, Path]) -> None:
    _root, out = odd_run
    for name in (
        "prediction_results.txt",
        "prediction_results_highestscore.csv",
        "sequence_summary.tsv",
    ):
        assert (out / "odd" / name).read_bytes() == (out / "odd_crlf" / name).read_bytes(), name


@pytest.mark.slow
def test_run_ids_verbatim_and_nothing_outside_out(odd_run: tuple[Path, Path]) -> None:
    root, out = odd_run
    outside = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_relative_to(out)
    )
    assert outside == ["in", "in/odd.fa", "in/odd_crlf.fa"]
    assert not list(Path.cwd().glob("pwned*"))
    summary = (out / "odd" / "sequence_summary.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t")[0] for line in summary.splitlines()[1:]]
    assert rows == ["plain", "café_latin", "lower", "rna", "iupac", *HOSTILE_IDS, LONG_ID]
    predictions = (out / "odd" / "prediction_results.txt").read_text(encoding="utf-8")
    for rid in (*HOSTILE_IDS, LONG_ID, "café_latin"):
        assert f"\n{rid}_chunk_1" in predictions


@pytest.mark.slow
def test_run_warns_about_rna(odd_run: tuple[Path, Path]) -> None:
    _root, out = odd_run
    warnings = [e for e in events(out) if e["type"] == "warning"]
    assert sorted(e["job"] for e in warnings) == ["odd", "odd_crlf"]
    assert all("'rna'" in e["message"] and "contain U" in e["message"] for e in warnings)


@pytest.mark.slow
def test_run_with_a_byte_order_mark_warns_once_and_gives_the_same_outputs(
    tmp_path: Path, demo_models
) -> None:
    plain, bom, bom_gz = with_and_without_bom(tmp_path / "in")
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "virnucpro_tui", "run", str(plain), str(bom), str(bom_gz), "--out",
         str(out), "--demo", "--no-ui", "--devices", "cpu:1"],
        env=cli_env(demo_models.root), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for job, path in (("bom", bom), ("bomgz", bom_gz)):
        for name in (PREDICTION_FILE, HIGHESTSCORE_FILE, "sequence_summary.tsv"):
            assert (out / job / name).read_bytes() == (out / "plain" / name).read_bytes(), name
        assert r.stderr.count(bom_warning(path)) == 1
    warnings = [(e["job"], e["message"]) for e in events(out) if e["type"] == "warning"]
    assert sorted(warnings) == [("bom", bom_warning(bom)), ("bomgz", bom_warning(bom_gz))]


# -- a 10 Mbp sequence, and a file of many records: memory stays bounded ----------------------

PEAK_RSS = (
    "import resource, sys\n"
    "from virnucpro_tui.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    "sys.exit(code)\n"
)


def prepare_peak_rss(path: Path, out: Path) -> tuple[int, float]:
    """Peak RSS (bytes) and wall time of ``virnucpro-tui prepare`` in a fresh interpreter."""
    start = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_RSS,
            "prepare",
            str(path),
            "--length",
            "500",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def write_random_records(path: Path, records: int, length: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(records):
            fh.write(f">r{i}\n{''.join(rng.choices('ACGT', k=length))}\n")


@pytest.mark.slow
def test_huge_sequence_and_many_records_stay_bounded_in_memory(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.fa"
    tiny.write_text(">t\nACGTACGT\n")
    base, _ = prepare_peak_rss(tiny, tmp_path / "o0")

    huge = tmp_path / "huge.fa"
    seq = "".join(random.Random(5).choices("ACGT", k=10_000_000))
    huge.write_text(
        ">huge one sequence\n" + "\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) + "\n"
    )
    peak, seconds = prepare_peak_rss(huge, tmp_path / "o1")
    # the sequence itself, its chunks and the parser's transient copy: ~6.5x, was 13.6x
    assert peak - base < 8 * len(seq), f"{(peak - base) / len(seq):.1f}x the sequence"
    assert seconds < 60
    chunked = (tmp_path / "o1" / "huge_chunked500.fa").read_text()
    assert chunked.count(">") == 20_000 and ">huge_chunk_20000\n" in chunked

    small, large = tmp_path / "m4.fa", tmp_path / "m16.fa"
    write_random_records(small, 16_000, 250, seed=6)  # 4 MB
    write_random_records(large, 64_000, 250, seed=6)  # 16 MB
    peak_small, _ = prepare_peak_rss(small, tmp_path / "o2")
    peak_large, _ = prepare_peak_rss(large, tmp_path / "o3")
    assert peak_large - peak_small < 4 * 2**20, "memory grows with the number of records"


# -- properties: FASTA round trip and batching ----------------------------------------------

IDS = st.text(
    st.characters(blacklist_categories=("Z", "C"), blacklist_characters=">"),
    min_size=1,
    max_size=30,
)
DESCRIPTIONS = st.text(st.characters(blacklist_categories=("C",)), max_size=40).map(str.strip)
SEQS = st.text(alphabet="ACGTacgtNn", min_size=1, max_size=1500)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(IDS, DESCRIPTIONS, SEQS), min_size=1, max_size=8, unique_by=lambda r: r[0]),
    st.integers(min_value=1, max_value=120),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_fasta_round_trip(records, width: int, newline: str, gz: bool) -> None:
    lines = []
    for rid, desc, seq in records:
        lines.append(f">{rid} {desc}".rstrip())
        lines += [seq[i : i + width] for i in range(0, len(seq), width)]
    data = (newline.join(lines) + newline).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("in.fa.gz" if gz else "in.fa")
        path.write_bytes(gzip.compress(data) if gz else data)
        got = list(iter_records(path))
        scan = scan_input(path, 500)
    assert [(r.id, r.seq) for r in got] == [(rid, seq) for rid, _desc, seq in records]
    assert [r.title for r in got] == [f"{rid} {desc}".rstrip() for rid, desc, _seq in records]
    assert scan.records == len(records) and scan.gzipped == gz
    assert scan.bases == sum(len(s) for _r, _d, s in records)
    assert scan.chunks == sum(-(-len(s) // 500) for _r, _d, s in records)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="ACGTN", min_size=1, max_size=2500), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=9),
)
def test_translation_batches_do_not_change_results(seqs: list[str], batch: int) -> None:
    records = [FastaRecord(i, f"s{i}", f"s{i}", s) for i, s in enumerate(seqs)]
    one_by_one = [
        (r.id, r.chunks, r.frames) for r in prepare_records(records, 300, batch_chunks=batch)
    ]
    at_once = [
        (r.id, r.chunks, r.frames) for r in prepare_records(records, 300, batch_chunks=10_000)
    ]
    assert one_by_one == at_once
    assert [c for _id, chunks, _f in at_once for c in chunks] == [
        c for r in records for c in chunk_sequence(r.id, r.seq, 300)
    ]


# -- assembly of a job with many chunks: bounded memory, same bytes ---------------------------


def write_job(shards: Path, preds: list, size: int = 7) -> int:
    """records.tsv and shard files for ``preds`` (one record per record id, in order)."""
    (shards / "job").mkdir(parents=True)
    with (shards / "job" / assemble.RECORDS_FILE).open("w") as fh:
        for rid, group in itertools.groupby(
            preds, key=lambda p: chunk_key(p.frame_id).rsplit("_chunk_", 1)[0]
        ):
            frames = list(group)
            chunks = len({chunk_key(f.frame_id) for f in frames})  # every chunk has frames
            fh.write(f"{rid}\t500\t{chunks}\t{chunks}\t{len(frames)}\n")
    for index, start in enumerate(range(0, len(preds), size)):
        part = preds[start : start + size]
        probs = np.array([[p.p_others, p.p_virus] for p in part], dtype=np.float32)
        write_shard_result(
            shard_path(shards, "job", index),
            ShardResult("job", index, [p.frame_id for p in part], probs),
        )
    return -(-len(preds) // size)


def random_predictions(records: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    preds = []
    for r in range(records):
        for k in range(1, int(rng.integers(1, 14)) + 1):  # chunk_10 sorts before chunk_2
            for frame in rng.choice(
                ["F1", "F2", "F3", "R1", "R2", "R3"], int(rng.integers(1, 7)), replace=False
            ):
                p_virus = np.float32(rng.random())
                preds.append(
                    Prediction(f"rec{r}_chunk_{k}{frame}", np.float32(1) - p_virus, p_virus)
                )
    return preds


def spy_on_spills(monkeypatch: pytest.MonkeyPatch, run_size: int) -> list[Path]:
    monkeypatch.setattr(assemble, "CONSENSUS_RUN", run_size)
    spilled: list[Path] = []
    real_spill = assemble.SortedVotes._spill

    def spill(self: assemble.SortedVotes) -> None:
        real_spill(self)
        spilled.append(self.runs[-1])

    monkeypatch.setattr(assemble.SortedVotes, "_spill", spill)
    return spilled


@pytest.mark.parametrize(
    "case", ["test_with_orfs_original_outputs", "test_fixed_500bp_original_outputs"]
)
def test_assembly_with_spilled_votes_gives_the_published_bytes(
    tmp_path: Path, reference_dir: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    preds = read_prediction_results(reference_dir / case / PREDICTION_FILE)
    spilled = spy_on_spills(monkeypatch, run_size=1)
    assemble.assemble_job(
        tmp_path / "shards", "job", write_job(tmp_path / "shards", preds), tmp_path / "out"
    )
    assert len(spilled) >= 2
    for name in (PREDICTION_FILE, HIGHESTSCORE_FILE):
        assert (tmp_path / "out" / name).read_bytes() == (
            reference_dir / case / name
        ).read_bytes(), name


def test_assembly_of_many_chunks_keeps_votes_in_bounded_sorted_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consensus goes to disk as sorted runs of at most CONSENSUS_RUN votes (here 64) and
    is merged at the end: memory does not grow with the number of chunks, the bytes are the
    same as the one-dictionary consensus (checked against the published tool in
    tests/test_core_golden.py)."""
    preds = random_predictions(300, seed=9)
    spilled = spy_on_spills(monkeypatch, run_size=64)
    assemble.assemble_job(
        tmp_path / "shards", "job", write_job(tmp_path / "shards", preds), tmp_path / "out"
    )
    chunks = len({chunk_key(p.frame_id) for p in preds})
    assert len(spilled) == chunks // 64 and chunks > 1_000
    expected = io.StringIO()
    ConsensusBuilder().add_all(preds).write(expected)
    assert (tmp_path / "out" / HIGHESTSCORE_FILE).read_text() == expected.getvalue()
    assert not [p for p in spilled if p.exists()]  # the runs are removed
    assert not list((tmp_path / "shards").rglob(".*.partial"))


def test_the_top_sequences_are_those_called_virus_first_then_by_max_score(
    tmp_path: Path,
) -> None:
    """A sequence with the highest P(virus) of one frame can still be called others (fewer than
    half its chunks viral): the top list ranks the calls first, so it never contradicts them."""

    def frame(fid: str, p_virus: float) -> Prediction:
        return Prediction(fid, np.float32(1 - p_virus), np.float32(p_virus))

    # one very high frame, in 1 of 3 chunks: called others
    contradiction = [frame("top_chunk_1F1", 0.9999), frame("top_chunk_2F1", 0.01)]
    contradiction.append(frame("top_chunk_3R2", 0.02))
    preds = contradiction + random_predictions(300, seed=9)
    totals = assemble.assemble_job(
        tmp_path / "shards", "job", write_job(tmp_path / "shards", preds), tmp_path / "out"
    )
    rows = [
        line.split("\t")
        for line in (tmp_path / "out" / "sequence_summary.tsv").read_text().splitlines()[1:]
    ]
    best_virus = sorted((-float(r[6]), r[0]) for r in rows if r[7] == "virus")[:10]
    assert [t[0] for t in totals.top_sequences] == [rid for _, rid in best_virus]
    assert all(call == "virus" for _, _, call in totals.top_sequences)
    top = next(r for r in rows if r[0] == "top")
    assert top[7] == "others" and float(top[6]) > min(t[1] for t in totals.top_sequences)


def _looks_like_protein_by_counting(seq: str) -> bool:
    """The protein rule as first written: count A/C/G/T/U/N in the upper-cased first 10 kB."""
    if len(seq) < 8:
        return False
    head = seq[:10_000].upper()
    return sum(head.count(c) for c in "ACGTUN") < 0.5 * len(head)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ACGTUNacgtunRYKMSWBDHVEFILPQXZ*-ßſıﬀé"), max_size=60),
    st.integers(min_value=0, max_value=400),
)
def test_the_one_pass_protein_rule_agrees_with_counting(text: str, repeat: int) -> None:
    """Validation decides "protein" in one pass over the bytes (it runs on every record, twice
    per run: docs/benchmarks.md#orchestrator-capacity-on-one-core-issue-16); the answer is the counting
    rule's, non-ASCII letters (whose upper case may be longer) and the 10 kB cut included."""
    from virnucpro_tui.core.fasta import _looks_like_protein

    seq = text * repeat
    assert _looks_like_protein(seq) == _looks_like_protein_by_counting(seq)
