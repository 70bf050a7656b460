"""FASTQ and compressed inputs (docs/outputs.md#inputs, docs/reliability.md#bad-input): the same
records, intermediate files and run outputs as the FASTA of the same reads, whatever the format,
compression or file name; every malformed FASTQ is one line and exit 2; progress counts
compressed bytes; a kill -9 on a FASTQ.gz input resumes to identical outputs."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from Bio import bgzf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import (
    OUTPUT_FILES,
    SAMPLE_CONTIGS,
    SAMPLE_JOBS,
    SAMPLE_READS,
    cli,
    cli_env,
    events,
    kill9_run,
    one_line,
    outputs,
    prepare_rejects,
)
from virnucpro_tui.cli import main
from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.core.compression import Compression
from virnucpro_tui.core.fasta import (
    FastaRecord,
    ReadPosition,
    SequenceFormat,
    input_stem,
    iter_records,
    scan_input,
)
from virnucpro_tui.core.prepare import intermediate_paths
from virnucpro_tui.measure.check_precision import sample_frames
from virnucpro_tui.run.rundir import job_names

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


def _bgzip(data: bytes) -> bytes:
    """bgzip's output: many small gzip members (Biopython writes the same BGZF blocks)."""
    buffer = _Kept()
    with bgzf.BgzfWriter(fileobj=buffer) as writer:
        writer.write(data)
    return buffer.getvalue()


class _Kept(io.BytesIO):
    def close(self) -> None:  # BgzfWriter closes its file: keep the bytes readable
        pass


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda data: data,
    "gzip": gzip.compress,
    "bgzip": _bgzip,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstd.compress,
}
KIND = {
    "plain": Compression.NONE,
    "gzip": Compression.GZIP,
    "bgzip": Compression.GZIP,
    "bzip2": Compression.BZIP2,
    "xz": Compression.XZ,
    "zstd": Compression.ZSTD,
}


def quality(n: int, rng: random.Random) -> str:
    """Phred+33 characters, '@' and '+' included (legal in a quality line)."""
    return "".join(rng.choice("!#+05:@AFI") for _ in range(n))


def as_fastq(records: list[FastaRecord], newline: str = "\n", seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return "".join(
        f"@{r.title}{newline}{r.seq}{newline}+{newline}{quality(len(r.seq), rng)}{newline}"
        for r in records
    ).encode()


def as_fasta(records: list[FastaRecord]) -> bytes:
    return "".join(f">{r.title}\n{r.seq}\n" for r in records).encode()


def fields(records: list[FastaRecord]) -> list[tuple[int, str, str, str]]:
    return [(r.index, r.id, r.title, r.seq) for r in records]


@pytest.fixture(scope="module")
def reads() -> list[FastaRecord]:
    return list(iter_records(SAMPLE_READS))


# -- the same records, whatever the format, compression and name ------------------------------


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
@pytest.mark.parametrize("fmt", ["FASTA", "FASTQ"])
def test_every_format_and_compression_reads_the_same_records(
    tmp_path: Path, reads: list[FastaRecord], fmt: str, compression: str
) -> None:
    data = as_fastq(reads) if fmt == "FASTQ" else as_fasta(reads)
    path = tmp_path / "reads.txt"  # an extension that says nothing: recognised by content
    path.write_bytes(COMPRESSORS[compression](data))
    assert fields(list(iter_records(path))) == fields(reads)
    scan = scan_input(path, 500)
    assert (scan.format, scan.compression) == (SequenceFormat(fmt), KIND[compression])
    assert (scan.records, scan.chunks) == (150, 184)


IDS = st.text(
    st.characters(blacklist_categories=("Z", "C"), blacklist_characters="@>+"),
    min_size=1,
    max_size=30,
)
SEQS = st.text(alphabet="ACGTacgtNn", min_size=1, max_size=700)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(IDS, SEQS, st.randoms()), min_size=1, max_size=8, unique_by=lambda r: r[0]),
    st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.sampled_from(sorted(COMPRESSORS)),
)
def test_fastq_round_trip(
    records, width, newline: str, repeat_title: bool, compression: str
) -> None:
    """Any valid FASTQ (four lines, or wrapped at ``width``; quality of any Phred characters,
    '@' and '+' included; the title repeated on the '+' line or not; LF or CRLF; any
    compression) reads back as its records."""
    text = []
    for rid, seq, rng in records:
        qual = "".join(chr(rng.randint(33, 126)) for _ in seq)
        wrap = width or len(seq)
        text.append(f"@{rid} desc")
        text += [seq[i : i + wrap] for i in range(0, len(seq), wrap)]
        text.append(f"+{rid} desc" if repeat_title else "+")
        text += [qual[i : i + wrap] for i in range(0, len(qual), wrap)]
    data = (newline.join(text) + newline).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in"
        path.write_bytes(COMPRESSORS[compression](data))
        got = [(r.id, r.title, r.seq) for r in iter_records(path)]
    assert got == [(rid, f"{rid} desc", seq) for rid, seq, _ in records]


def test_bgzip_is_many_gzip_members(reads: list[FastaRecord]) -> None:
    data = _bgzip(as_fastq(reads))
    assert data.count(b"\x1f\x8b\x08\x04") > 1  # several members with BGZF's extra field


def test_crlf_wrapped_and_tricky_fastq(tmp_path: Path) -> None:
    """CRLF line ends, sequence and quality wrapped over several lines, quality lines that begin
    with '@' or '+', a '+' line that repeats the header, blank lines at the end: Biopython's
    tricky example reads as the records it holds."""
    path = tmp_path / "tricky.fq"
    path.write_bytes(
        b"@071113_EAS56_0053:1:1:998:236 first\r\nTTTCTTGCCC\r\n"
        b"+071113_EAS56_0053:1:1:998:236 first\r\nIIII+IIICI\r\n"
        b"@071113_EAS56_0053:1:1:182:712\r\nACCCAGCTAA\r\n+\r\n@IIIIIIII<\r\n"
        b"@071113_EAS56_0053:1:3:990:501\r\nTGGGAGGTTT\r\nTATGTGGA\r\n+\r\nIIIIIII.II\r\n"
        b"@-7.%<&+\r\n\r\n\r\n"
    )
    got = [(r.id, r.title, r.seq) for r in iter_records(path)]
    assert got == [
        ("071113_EAS56_0053:1:1:998:236", "071113_EAS56_0053:1:1:998:236 first", "TTTCTTGCCC"),
        ("071113_EAS56_0053:1:1:182:712", "071113_EAS56_0053:1:1:182:712", "ACCCAGCTAA"),
        ("071113_EAS56_0053:1:3:990:501", "071113_EAS56_0053:1:3:990:501", "TGGGAGGTTTTATGTGGA"),
    ]


def prepared(path: Path, out: Path) -> dict[str, bytes]:
    assert main(["prepare", str(path), "--length", "500", "--out", str(out)]) == 0
    stem = input_stem(path)
    return {p.name[len(stem) :]: p.read_bytes() for p in intermediate_paths(path, out, 500)}


@pytest.mark.parametrize("name", ["reads.fastq.gz", "reads.fq.bz2", "reads.fq.xz", "reads.zst"])
def test_prepare_writes_the_fasta_intermediate_files_byte_for_byte(
    tmp_path: Path, reads: list[FastaRecord], name: str
) -> None:
    expected = prepared(SAMPLE_READS, tmp_path / "fasta")
    path = tmp_path / name
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}
    path.write_bytes(compress.get(path.suffix, zstd.compress)(as_fastq(reads)))
    assert prepared(path, tmp_path / "fastq") == expected
    assert sorted(p.name for p in (tmp_path / "fastq").iterdir()) == [
        "reads_chunked500.fa",
        "reads_identified_nucleotide.fa",
        "reads_identified_protein.faa",
    ]


def test_check_precision_samples_the_same_frames_from_fastq(
    tmp_path: Path, reads: list[FastaRecord]
) -> None:
    path = tmp_path / "reads.fq.gz"
    path.write_bytes(gzip.compress(as_fastq(reads)))
    assert sample_frames(path, 500, 20) == sample_frames(SAMPLE_READS, 500, 20)


# -- progress counts the bytes of the file on disk ----------------------------------------------


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_progress_counts_compressed_bytes(tmp_path: Path, compression: str) -> None:
    rng = random.Random(3)
    records = [
        FastaRecord(i, f"r{i}", f"r{i}", "".join(rng.choices("ACGT", k=150))) for i in range(6000)
    ]
    path = tmp_path / "reads.fq"
    path.write_bytes(COMPRESSORS[compression](as_fastq(records)))
    size = path.stat().st_size
    position = ReadPosition()
    seen = []
    for record in iter_records(path, position):
        if record.index % 1000 == 0:
            seen.append(position.bytes)
    assert 0 < seen[0] < size / 2, (seen, size)  # read as it goes, not all at once
    assert seen == sorted(seen) and seen[-1] <= size
    assert position.bytes == size  # all of it, in bytes as stored


# -- names: paired files and every extension ----------------------------------------------------


def test_input_stems_and_paired_job_names() -> None:
    names = ["x.fastq.gz", "x.fq.bz2", "x.fa.xz", "x.fna.zst", "x.fq", "x.bgz", "x.FASTQ.GZ"]
    assert [input_stem(n) for n in names] == ["x"] * 7
    paired = [Path("run7/S1_L001_R1_001.fastq.gz"), Path("run7/S1_L001_R2_001.fastq.gz")]
    assert job_names(paired) == ["S1_L001_R1_001", "S1_L001_R2_001"]
    assert job_names([Path("a/x.fq.gz"), Path("b/x.fa")]) == ["x", "x-2"]


# -- bad FASTQ: one line, exit 2, nothing written ------------------------------------------------

GOOD = b"@r1 lane 1\nACGTACGTAC\n+\nIIIIIIIIII\n"
LONG = b"".join(b"@r%d\n%s\n+\n%s\n" % (i, b"ACGT" * 50, b"I" * 200) for i in range(2000))
BAD = {
    # name: (file bytes, file name, words the message must contain)
    "truncated_in_quality": (
        GOOD + b"@r2\nACGTACGTAC\n+\nIIII",
        "cut.fq",
        ["cut.fq: record 2 ('r2'), line 8: truncated record", "4 of 10 characters"],
    ),
    "truncated_before_plus": (
        GOOD + b"@r2\nACGTACGTAC\n",
        "cut2.fq",
        ["cut2.fq: record 2 ('r2'), line 6: truncated record", "before its '+' line"],
    ),
    "truncated_after_header": (
        GOOD + b"@r2 desc\n",
        "cut3.fq",
        ["cut3.fq: record 2 ('r2'), line 5: truncated record", "after its header"],
    ),
    "length_mismatch": (
        GOOD + b"@r2\nACGTACGTAC\n+\nIIIIIIIII\n@r3\nACGT\n+\nIIII\n",
        "len.fq",
        [
            "len.fq: record 2 ('r2'), line 8",
            "sequence and quality have different lengths (10 and 9)",
        ],
    ),
    "missing_plus": (
        GOOD + b"@r2\nACGTACGTAC\nIIIIIIIIII\n@r3\nACGT\n+\nIIII\n",
        "noplus.fq",
        ["noplus.fq: record 2 ('r2'), line 8", "missing '+' line", "'@r3'"],
    ),
    "header_without_at": (
        GOOD + b"r2\nACGT\n+\nIIII\n",
        "noat.fq",
        ["noat.fq: record 2, line 5", "expected a header line starting with '@'", "'r2'"],
    ),
    "quality_with_control_bytes": (
        b"@r1\nACGT\n+\nII\x00I\n",
        "nul.fq",
        ["nul.fq: record 1 ('r1'), line 4", "quality has '\\x00' at position 3"],
    ),
    "plus_names_another_record": (
        b"@r1\nACGT\n+r9\nIIII\n",
        "plus.fq",
        ["plus.fq: record 1 ('r1'), line 3", "the '+' line names another record"],
    ),
    "protein_reads": (
        b"@p1\nMKTAYIAKQRQISFVKSHFSRQ\n+\nIIIIIIIIIIIIIIIIIIIIII\n",
        "prot.fq",
        ["prot.fq: record 1 ('p1')", "protein"],
    ),
    "duplicate_read_names": (
        GOOD + b"@r1 again\nACGT\n+\nIIII\n",
        "dup.fq",
        ["dup.fq: record 2 ('r1')", "duplicate sequence id (first seen at record 1)"],
    ),
    "binary_file": (
        bytes(range(256)) * 8,
        "blob.fq",
        ["blob.fq: not a FASTA or FASTQ file: binary data"],
    ),
    "binary_after_a_header": (
        b"@r1\nACGT\n+\nIIII\n@r2\n\x00\x01\x02\xff\xfe\n+\n!!!!!\n",
        "half.fq",
        ["half.fq: record 2 ('r2')", "invalid character '\\x00' at position 1"],
    ),
    "bam_file": (
        gzip.compress(b"BAM\x01\x00\x00\x00\x00"),
        "reads.bam",
        ["reads.bam: not a FASTA or FASTQ file: a BAM file", "samtools fastq"],
    ),
    "sam_file": (
        b"@HD\tVN:1.6\tSO:unsorted\n@SQ\tSN:chr1\tLN:1000\nr1\t4\t*\t0\t0\t*\t*\t0\t0\tACGT\tIIII\n",
        "reads.sam",
        ["reads.sam: not a FASTA or FASTQ file: a SAM file", "samtools fastq"],
    ),
    "corrupt_xz": (
        lzma.compress(LONG)[:200] + b"\x00" * 64 + lzma.compress(LONG)[264:],
        "bad.fq.xz",
        ["bad.fq.xz: unreadable at record", "corrupt xz data"],
    ),
    "zip_archive": (b"PK\x03\x04" + b"\x00" * 40, "reads.zip", ["reads.zip: a zip archive"]),
    "unix_compress": (b"\x1f\x9d\x90" + b"\x00" * 20, "reads.fq.Z", ["reads.fq.Z", "compress"]),
}
for _kind, _suffix in (("bzip2", "bz2"), ("xz", "xz"), ("zstd", "zst"), ("gzip", "gz")):
    BAD[f"truncated_{_kind}"] = (
        COMPRESSORS[_kind](LONG)[:-40],
        f"cut.fq.{_suffix}",
        [f"cut.fq.{_suffix}: unreadable at record", f"the {_kind} stream is truncated"],
    )


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_fastq_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    line = prepare_rejects(tmp_path, capsys, *BAD[name])
    assert line.startswith(f"virnucpro-tui: error: {tmp_path}/"), line


@pytest.mark.parametrize("name", ["length_mismatch", "truncated_xz"])
def test_run_and_check_precision_refuse_bad_fastq_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    data, filename, words = BAD[name]
    path = tmp_path / filename
    path.write_bytes(data)
    out = tmp_path / "run"
    args = ["run", str(path), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1"]
    assert main(args) == 2
    line = one_line(capsys)
    assert all(word in line for word in words), line
    assert not out.exists()
    assert main(["check-precision", str(path), "--demo", "--precision", "bf16"]) == 2
    line = one_line(capsys)
    assert all(word in line for word in words), line


# -- real runs (demo models) ----------------------------------------------------------------------


def write_formats(root: Path) -> list[Path]:
    """The sample data as FASTQ, FASTQ.gz, FASTA.bz2 and FASTQ.xz; the reads' FASTQ.gz is R1 of
    a pair whose R2 holds their reverse complements under the same read names."""
    root.mkdir(parents=True)
    paths = []
    for source, name in ((SAMPLE_CONTIGS, "contigs"), (SAMPLE_READS, "reads")):
        records = list(iter_records(source))
        fastq, fasta = as_fastq(records), as_fasta(records)
        gz = f"{name}_R1.fastq.gz" if name == "reads" else f"{name}_gz.fastq.gz"  # R1 of a pair
        for filename, data in (
            (f"{name}.fastq", fastq),
            (gz, gzip.compress(fastq)),
            (f"{name}_bz2.fa.bz2", bz2.compress(fasta)),
            (f"{name}_xz.fq.xz", lzma.compress(fastq)),
        ):
            paths.append(root / filename)
            paths[-1].write_bytes(data)
    reads = list(iter_records(SAMPLE_READS))
    mates = [
        FastaRecord(
            r.index, r.id, f"{r.id} 2:N:0", r.seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
        )
        for r in reads
    ]
    paths.append(root / "reads_R2.fastq.gz")
    paths[-1].write_bytes(gzip.compress(as_fastq(mates, seed=9)))
    return paths


@pytest.fixture(scope="module")
def formats_run(tmp_path_factory: pytest.TempPathFactory, demo_env) -> Path:
    """One run of every format (each input a job with its own outputs)."""
    root = tmp_path_factory.mktemp("formats")
    inputs = write_formats(root / "in")
    out = root / "run"
    args = ["--demo", "--no-ui", "--shard-size", "24", "--devices", "cpu:1"]
    r = cli(["run", *map(str, inputs), "--out", str(out), *args], demo_env, timeout=850)
    assert r.returncode == 0, r.stderr
    return out


FORMATS_RUN_TIMEOUT = pytest.mark.timeout(900)  # nine jobs on a shared core: minutes


@pytest.mark.slow
@FORMATS_RUN_TIMEOUT
def test_sample_data_in_every_format_gives_the_fasta_predictions(
    formats_run: Path, local_baseline: dict[str, bytes]
) -> None:
    for source, jobs in (
        ("sample_contigs", ["contigs", "contigs_gz", "contigs_bz2", "contigs_xz"]),
        ("sample_reads", ["reads", "reads_R1", "reads_bz2", "reads_xz"]),
    ):
        for job in jobs:
            for name in OUTPUT_FILES:
                got = (formats_run / job / name).read_bytes()
                assert got == local_baseline[f"{source}/{name}"], (job, name)


@pytest.mark.slow
@FORMATS_RUN_TIMEOUT
def test_paired_files_are_two_jobs_with_their_own_outputs(formats_run: Path) -> None:
    """R1 and R2 share every read name: two jobs, two directories, each with every read."""
    ids = {}
    for job in ("reads_R1", "reads_R2"):
        rows = (formats_run / job / "sequence_summary.tsv").read_text().splitlines()[1:]
        ids[job] = sorted(row.split("\t")[0] for row in rows)
    reads = sorted(r.id for r in iter_records(SAMPLE_READS))
    assert ids["reads_R1"] == ids["reads_R2"] == reads
    r1 = (formats_run / "reads_R1" / "prediction_results.txt").read_bytes()
    assert r1 != (formats_run / "reads_R2" / "prediction_results.txt").read_bytes()
    done = [e["job"] for e in events(formats_run) if e["type"] == "job_done"]
    assert "reads_R1" in done and "reads_R2" in done


@pytest.mark.slow
@FORMATS_RUN_TIMEOUT
def test_provenance_names_each_input_as_stored(formats_run: Path) -> None:
    """The checksum is the file's as stored (compressed), with its format and compression."""
    for job, fmt, compression in (
        ("reads", "FASTQ", "none"),
        ("reads_R1", "FASTQ", "gzip"),
        ("contigs_bz2", "FASTA", "bzip2"),
        ("contigs_xz", "FASTQ", "xz"),
    ):
        entry = json.loads((formats_run / job / "provenance.json").read_text())["input"]
        path = Path(entry["path"])
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
        assert (entry["format"], entry["compression"]) == (fmt, compression), entry


@pytest.mark.slow
@pytest.mark.parametrize("after_shards", [0, 3])
def test_kill9_on_fastq_gz_then_rerun_is_byte_identical(
    tmp_path: Path, demo_models, demo_env, local_baseline, after_shards: int
) -> None:
    """kill -9 of the whole run in preparation (0) or after 3 shards, on FASTQ.gz inputs named
    like the sample data: the rerun resumes to the FASTA run's bytes."""
    inputs = []
    for source in (SAMPLE_CONTIGS, SAMPLE_READS):
        path = tmp_path / f"{input_stem(source)}.fastq.gz"
        path.write_bytes(gzip.compress(as_fastq(list(iter_records(source)))))
        inputs.append(str(path))
    out = tmp_path / "run"
    args = ["run", *inputs, "--out", str(out), "--demo", "--no-ui", "--shard-size", "24"]
    kill9_run(
        [*args, "--devices", "cpu:1"],
        cli_env(demo_models.root, {"sleep_per_batch_s": 0.05}),
        out,
        after_shards,
    )
    done_before = {(e["job"], e["shard"]) for e in events(out) if e["type"] == "shard_done"}
    assert len(done_before) >= after_shards
    r = cli([*args, "--devices", "cpu:1"], demo_env)
    assert r.returncode == 0, r.stderr
    assert "(resuming)" in r.stdout + r.stderr
    skipped = {(e["job"], e["shard"]) for e in events(out) if e["type"] == "shard_skipped"}
    assert done_before <= skipped
    assert outputs(out, SAMPLE_JOBS) == local_baseline
