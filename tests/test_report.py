"""The report (docs/outputs.md): viral_sequences.fa, viral_regions.tsv/.bed, prediction.png/.svg
and report.html, built by ``run`` at the end of each job (on fake workers: real files, no
models) and rebuilt by ``virnucpro-tui report``; refusals leave nothing written."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import pytest
from Bio import SeqIO

from tests.helpers import fake_run_config, orf
from virnucpro_tui.cli import main
from virnucpro_tui.core.outputs import JOB_REPORT_FILES, REPORT_FILE
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.pool.events import Event, JobDone, RunStarted, WarningEvent
from virnucpro_tui.report.hook import ReportHook
from virnucpro_tui.run.hooks import FinishedJob
from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig
from virnucpro_tui.testing.fake_backend import FakeBackend, FakeWorkerPlan

HEADER = re.compile(r"^(\S+) call=virus viral_chunks=(\d+)/(\d+) max_virus_score=(\S+)(?: (.*))?$")


def write_inputs(tmp_path: Path) -> list[Path]:
    rng = random.Random(11)
    contigs = tmp_path / "contigs.fa"
    with contigs.open("w") as fh:
        for i in range(24):
            seq = orf(rng.choice((400, 900, 1700, 2600)), rng)
            if i % 3 == 0:
                seq = seq[:200].lower() + seq[200:]  # soft-masked: kept as written
            fh.write(f">contig_{i:02d} sample=A len={len(seq)}\n")
            fh.writelines(seq[j : j + 70] + "\n" for j in range(0, len(seq), 70))
    reads = tmp_path / "reads.fa.gz"
    with gzip.open(reads, "wt") as fh:
        for i in range(30):
            fh.write(f">read{i}\n{orf(300, rng)}\n")
    return [contigs, reads]


def run_config(inputs: list[Path], out: Path, models: ModelFiles, report: bool) -> RunConfig:
    return fake_run_config(
        inputs,
        out,
        models,
        devices="cpu:1",
        shard_size=16,
        command=["virnucpro-tui", "run", *map(str, inputs), "--out", str(out)],
        on_job_finished=ReportHook() if report else None,
    )


def p_virus(frame_id: str) -> float:
    """Varied, reproducible scores: a frame's P(virus) from its id's digest."""
    return int(hashlib.blake2b(frame_id.encode(), digest_size=2).hexdigest(), 16) / 65535


def run(cfg: RunConfig) -> list[Event]:
    seen: list[Event] = []
    plan = FakeWorkerPlan(p_virus=p_virus, seconds_per_shard=0.02)
    backend = FakeBackend(write_results=True, virtual_time=False, default=plan)
    code = Orchestrator(cfg, [seen.append], backend=backend).execute()  # type: ignore[list-item]
    assert code == 0
    return seen


@pytest.fixture(scope="module")
def models(demo_models) -> ModelFiles:
    return ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, models: ModelFiles) -> tuple[Path, list[Path], list[Event]]:
    """One run for the tests that only read it (they write elsewhere)."""
    tmp_path = tmp_path_factory.mktemp("report")
    inputs = write_inputs(tmp_path)
    out = tmp_path / "run"
    return out, inputs, run(run_config(inputs, out, models, report=True))


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def summary_rows(job_dir: Path) -> list[dict[str, str]]:
    lines = (job_dir / "sequence_summary.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


def test_a_run_writes_the_six_files_of_every_input_and_names_them_report_first(finished) -> None:
    out, _, events = finished
    assert (out / REPORT_FILE).stat().st_size > 10_000
    done = [e for e in events if isinstance(e, JobDone)]
    assert [d.job for d in done] == ["contigs", "reads"]
    for d in done:
        job_dir = out / d.job
        for name in JOB_REPORT_FILES:
            assert (job_dir / name).stat().st_size > 0, name
        assert list(d.outputs)[0] == REPORT_FILE
        assert set(JOB_REPORT_FILES) <= set(d.outputs)
        listed = json.loads((job_dir / "provenance.json").read_text())["report_files"]
        assert listed == {
            REPORT_FILE: "../report.html",
            **{name: name for name in JOB_REPORT_FILES},
        }


def test_viral_sequences_are_the_input_records_called_virus_letters_as_written(finished) -> None:
    out, inputs, _ = finished
    for job, path in zip(("contigs", "reads"), inputs, strict=True):
        calls = {r["Sequence_ID"]: r for r in summary_rows(out / job)}
        with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as handle:
            expected = [r for r in SeqIO.parse(handle, "fasta") if calls[r.id]["call"] == "virus"]
        got = list(SeqIO.parse(out / job / "viral_sequences.fa", "fasta"))
        assert expected, f"{job}: the fake scores call some sequences virus"
        assert [r.id for r in got] == [r.id for r in expected]
        for g, x in zip(got, expected, strict=True):
            assert str(g.seq) == str(x.seq)  # case kept
            m = HEADER.match(g.description)
            assert m, g.description
            row = calls[g.id]
            assert m.group(2, 3, 4) == (
                row["viral_chunks"],
                row["chunks_with_frames"],
                row["max_virus_score"],
            )
            assert (m.group(5) or "") == x.description.partition(" ")[2]
    assert any(c.islower() for c in (out / "contigs" / "viral_sequences.fa").read_text())


def test_regions_agree_with_the_chunk_calls_and_lie_inside_each_sequence(finished) -> None:
    out, _, _ = finished
    for job in ("contigs", "reads"):
        lengths = {r["Sequence_ID"]: int(r["length"]) for r in summary_rows(out / job)}
        calls = dict(
            line.split("\t")
            for line in (out / job / "prediction_results_highestscore.csv")
            .read_text()
            .splitlines()[1:]
        )
        viral = {key for key, call in calls.items() if call == "True"}
        tsv = (out / job / "viral_regions.tsv").read_text().splitlines()
        bed = (out / job / "viral_regions.bed").read_text().splitlines()
        assert tsv[0].split("\t") == [
            "Sequence_ID",
            "start",
            "end",
            "length",
            "chunks",
            "mean_virus_score",
            "max_virus_score",
            "whole_sequence",
        ]
        assert len(tsv) - 1 == len(bed)
        covered = 0
        for row, bed_row in zip(tsv[1:], bed, strict=True):
            sid, start, end, length, chunks, _mean, best, whole = row.split("\t")
            assert 1 <= int(start) <= int(end) <= lengths[sid]
            assert int(length) == int(end) - int(start) + 1
            assert whole == ("yes" if (int(start), int(end)) == (1, lengths[sid]) else "no")
            b = bed_row.split("\t")
            assert b == [sid, str(int(start) - 1), end, sid, str(round(1000 * float(best))), "."]
            covered += int(chunks)
        assert covered == len(viral)  # gap 0: every region chunk is viral, every viral chunk in one


def test_report_rebuilds_the_same_files_from_a_run_made_without_them(
    tmp_path, models, capsys
) -> None:
    inputs = write_inputs(tmp_path)
    with_report, without = tmp_path / "with", tmp_path / "without"
    run(run_config(inputs, with_report, models, report=True))
    run(run_config(inputs, without, models, report=False))  # as a run before this change
    assert not (without / REPORT_FILE).exists()
    assert not any(
        (without / job / name).exists() for job in ("contigs", "reads") for name in JOB_REPORT_FILES
    )
    assert main(["report", str(without)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].strip() == str(without / REPORT_FILE)
    for job in ("contigs", "reads"):
        for name in ("viral_sequences.fa", "viral_regions.tsv", "viral_regions.bed"):
            assert (without / job / name).read_bytes() == (with_report / job / name).read_bytes()
        assert (without / job / "prediction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (without / job / "prediction.svg").read_bytes()[:2000]


def test_the_report_built_during_the_run_says_how_far_it_is_and_ends_complete(
    tmp_path, models
) -> None:
    """``run`` writes report.html as each input finishes: the page built after the first of two
    says so, the one after the last says complete (not the "running" the manifest still has
    then), and its wall time is the run's so far, not one input's."""
    pages: list[str] = []
    hook = ReportHook()

    def keep_each_page(finished: FinishedJob) -> list[Path]:
        written = hook(finished)
        pages.append(written[0].read_text())
        return written

    out = tmp_path / "run"
    cfg = run_config(write_inputs(tmp_path), out, models, report=False)
    events = run(dataclasses.replace(cfg, on_job_finished=keep_each_page))
    status = [re.search(r'data-field="status">([^<]*)<', page) for page in pages]
    assert [m.group(1) if m else None for m in status] == [
        "running: 1 of 2 inputs done",
        "complete",
    ]
    wall = re.search(r'data-field="run-wall" data-value="([^"]*)"', pages[-1])
    started = next(e.ts for e in events if isinstance(e, RunStarted))
    last_job = max(e.ts for e in events if isinstance(e, JobDone))
    minutes, seconds = wall.group(1).split(":") if wall else ("-1", "0")  # m:ss
    assert abs(int(minutes) * 60 + int(seconds) - (last_job - started)) <= 1.5, wall


def test_region_gap_merges_regions(finished, tmp_path) -> None:
    out, _, _ = finished
    assert main(["report", str(out), "--out", str(tmp_path / "gap"), "--region-gap", "3"]) == 0
    plain = (out / "contigs" / "viral_regions.tsv").read_text().splitlines()
    merged = (tmp_path / "gap" / "contigs" / "viral_regions.tsv").read_text().splitlines()
    assert len(merged) < len(plain)
    assert sum(int(r.split("\t")[3]) for r in merged[1:]) >= sum(
        int(r.split("\t")[3]) for r in plain[1:]
    )


def test_sequences_picks_the_tracks_and_an_unknown_id_is_refused(
    finished, tmp_path, capsys
) -> None:
    out, _, _ = finished
    assert (
        main(
            ["report", str(out), "--out", str(tmp_path / "pick"), "--sequences", "contig_01,read3"]
        )
        == 0
    )
    svg = (tmp_path / "pick" / "contigs" / "prediction.svg").read_text()
    assert "contig_01" in svg and "contig_02 " not in svg
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "none"), "--sequences", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["virnucpro-tui: error: --sequences: not in any input of the run: nope"]
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").rglob("*.*"))


def unfinished_copy(out: Path, tmp_path: Path) -> Path:
    """The run as a kill would leave it: status interrupted, no final outputs, a shard missing."""
    copy = tmp_path / "unfinished"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for job in ("contigs", "reads"):
        for p in (copy / job).iterdir():
            p.unlink()
    shards = sorted((copy / "shards" / "contigs").glob("0*.tsv"))
    shards[-1].unlink()
    return copy


def test_an_unfinished_run_is_refused_with_how_to_finish_it(finished, tmp_path, capsys) -> None:
    copy = unfinished_copy(finished[0], tmp_path)
    before = tree(copy)
    assert main(["report", str(copy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "has not finished (status interrupted)" in err[0]
    assert "virnucpro-tui run " in err[0] and "--partial" in err[0]
    assert tree(copy) == before


def test_partial_reports_the_verified_shards_marked_partial(finished, tmp_path) -> None:
    out, _, _ = finished
    copy = unfinished_copy(out, tmp_path)
    assert main(["report", str(copy), "--partial"]) == 0
    page = (copy / "report-partial" / REPORT_FILE).read_text()
    assert 'data-banner="partial"' in page and "<title>PARTIAL " in page
    assert "PARTIAL" in (copy / "report-partial" / "contigs" / "prediction.svg").read_text()
    full = (out / "contigs" / "viral_sequences.fa").read_text()
    part = (copy / "report-partial" / "contigs" / "viral_sequences.fa").read_text()
    assert part and full.startswith(part) and len(part) < len(full)
    reads = (copy / "report-partial" / "reads" / "viral_sequences.fa").read_bytes()
    assert reads == (out / "reads" / "viral_sequences.fa").read_bytes()  # all its shards verified


@pytest.mark.parametrize("case", ["missing", "not a run", "corrupt summary"])
def test_bad_input_gets_one_line_exit_2_and_nothing_written(
    finished, tmp_path, capsys, case
) -> None:
    out, _, _ = finished
    target = tmp_path / "target"
    if case == "missing":
        pass
    elif case == "not a run":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    else:
        shutil.copytree(out, target)
        for name in (*JOB_REPORT_FILES,):
            (target / "contigs" / name).unlink()
        (target / REPORT_FILE).unlink()
        summary = target / "contigs" / "sequence_summary.tsv"
        lines = summary.read_text().splitlines(keepends=True)
        lines[5] = lines[5].replace("\t", "\tX", 1)
        summary.write_text("".join(lines))
    before = tree(target) if target.exists() else None
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("virnucpro-tui: error: "), err
    assert (tree(target) if target.exists() else None) == before


def test_no_report_skips_it_and_a_failing_report_only_warns(tmp_path, models) -> None:
    inputs = write_inputs(tmp_path)[:1]
    events = run(run_config(inputs, tmp_path / "off", models, report=False))
    assert not (tmp_path / "off" / REPORT_FILE).exists()
    assert REPORT_FILE not in next(e for e in events if isinstance(e, JobDone)).outputs

    def broken(_finished):
        raise OSError("disk says no")

    cfg = run_config(inputs, tmp_path / "broken", models, report=False)
    cfg.on_job_finished = broken
    events = run(cfg)
    warning = next(e for e in events if isinstance(e, WarningEvent))
    assert "the report of contigs was not built (disk says no)" in warning.message
    assert f"virnucpro-tui report {tmp_path / 'broken'}" in warning.message
    assert (tmp_path / "broken" / "sequence_summary.tsv").exists()


def test_the_releases_run_directory_gets_a_partial_report_then_a_full_one(
    tmp_path, models, capsys
) -> None:
    """tests/data/run_v1, written by the 0.1.0 release before the report existed: refused while
    interrupted, reported with --partial from its 6 verified shards, then, once a run of
    today's code finished it (without the report: as the release would have), rebuilt whole."""
    from tests.test_run_compat import execute, release_run

    inputs, out = release_run(tmp_path / "release", models)
    assert main(["report", str(out)]) == 1
    assert "has not finished (status interrupted)" in capsys.readouterr().err
    assert main(["report", str(out), "--partial"]) == 0
    partial = out / "report-partial"
    page = (partial / REPORT_FILE).read_text()
    assert 'data-banner="partial"' in page
    small = (partial / "small" / "viral_regions.tsv").read_text().splitlines()
    assert small[0].startswith("Sequence_ID\tstart")
    assert (partial / "other" / "viral_sequences.fa").read_text() == ""  # not started
    execute(inputs, out, models)
    assert main(["report", str(out)]) == 0
    for job in ("small", "other"):
        rows = summary_rows(out / job)
        assert rows, job
        for name in JOB_REPORT_FILES:
            assert (out / job / name).exists(), name
        called = {r["Sequence_ID"] for r in rows if r["call"] == "virus"}
        got = {r.id for r in SeqIO.parse(out / job / "viral_sequences.fa", "fasta")}
        assert got == called


def test_run_wires_the_report_hook_unless_no_report() -> None:
    from virnucpro_tui.cli.parser import build_parser
    from virnucpro_tui.cli.run_options import run_config

    def config(*flags: str) -> RunConfig:
        args = build_parser().parse_args(["run", "in.fa", "--out", "o", *flags])
        return run_config(args, models=None, demo=False, scans=[])

    assert config().on_job_finished == ReportHook(region_gap=0)
    assert config("--region-gap", "2").on_job_finished == ReportHook(region_gap=2)
    assert config("--no-report").on_job_finished is None
    with pytest.raises(SystemExit):
        config("--region-gap", "-1")
