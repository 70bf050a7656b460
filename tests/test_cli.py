"""The command line's surfaces: help for every command and option, the --length rule (the same
with --demo), ``run`` without an input, and the demo command of the README and the Makefile."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from tests.helpers import ROOT
from virnucpro_tui.cli import DEMO_COMMAND, build_parser, main


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("virnucpro-tui",)
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += parsers(sub, (*path, name))
    return found


def test_every_command_has_a_description_and_every_argument_a_help() -> None:
    missing = []
    for path, parser in parsers(build_parser()):
        if not parser.description:
            missing.append(f"{' '.join(path)}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(f"{' '.join(path)} {action.option_strings or action.dest}: no help")
    assert missing == []
    assert len(parsers(build_parser())) >= 9  # run, prepare, attach, bench, models (3), ...


def help_of(*words: str) -> str:
    """The help of one command, its lines joined (argparse wraps them at the terminal width)."""
    for path, parser in parsers(build_parser()):
        if path[1:] == words:
            return " ".join(parser.format_help().split())
    raise KeyError(words)


def test_the_help_explains_input_dir_lengths_and_sections() -> None:
    assert "a FASTA or FASTQ file of nucleotide sequences" in help_of("run")
    assert "a FASTA or FASTQ file of nucleotide sequences" in help_of("prepare")
    assert "the run directory: the --out of a `run`" in help_of("attach")
    assert "chunk length: 300 or 500 (default 500)" in help_of("prepare")
    assert "300 or 500 (default 500)" in help_of("models", "locate")
    assert "sections to skip: prepare, stages, fidelity, baseline, pipeline" in help_of("bench")
    assert "1 when it ended without completing" in help_of("attach")


@pytest.mark.parametrize("demo", [[], ["--demo"]])
def test_a_length_other_than_300_or_500_needs_force_with_or_without_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo: list[str]
) -> None:
    fasta = tmp_path / "a.fa"
    fasta.write_text(">a\nACGTACGTACGTACGTACGTACGTACGTACGTACGT\n")
    for length in ("400", "50"):
        code = main(["run", str(fasta), "--out", str(tmp_path / "o"), "--length", length, *demo])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.count("\n") == 1 and f"--length {length}" in err
        assert "--force-model-length uses another length anyway" in err
        assert "used anyway (--force-model-length)" not in err  # no flag that was not given
    assert not (tmp_path / "o").exists()


def test_forcing_a_length_warns_naming_the_flag_given(
    demo_models, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "locate", "--demo", "--length", "400"]) == 2
    assert "--length 400" in capsys.readouterr().err
    assert main(["models", "locate", "--demo", "--length", "400", "--force-model-length"]) == 0
    err = capsys.readouterr().err
    assert "used anyway (--force-model-length)" in err  # the user gave it
    assert main(["models", "locate", "--demo", "--length", "300"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_run_without_an_input_is_an_error_that_shows_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--demo", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no INPUT given" in err and DEMO_COMMAND in err
    assert not (tmp_path / "o").exists()  # nothing was scored


def test_bare_run_names_everything_it_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` alone names INPUT and --out (not only --out, the first thing argparse checked);
    `run INPUT` names --out; each in one line, exit 2, nothing written."""
    from tests.helpers import SAMPLE_CONTIGS

    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    assert capsys.readouterr().err == (
        "virnucpro-tui: error: no INPUT and no --out given: `virnucpro-tui run INPUT... --out DIR` "
        "scores FASTA or FASTQ files into the run directory DIR; to try the demo models on the "
        f"sample data, from the repository: {DEMO_COMMAND}\n"
    )
    assert main(["run", str(SAMPLE_CONTIGS), "--demo"]) == 2
    assert capsys.readouterr().err == (
        "virnucpro-tui: error: no --out given: the run directory for the outputs, events.jsonl "
        "and logs (created if missing; rerunning with the same --out resumes), e.g. "
        "--out results/\n"
    )
    assert list(tmp_path.iterdir()) == []
    readme = (ROOT / "README.md").read_text()
    assert "`virnucpro-tui run` alone names what it needs" in readme


def test_the_demo_command_names_its_inputs_and_ends_by_itself() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "sample_data/sample_contigs.fa sample_data/sample_reads.fa.gz" in recipe
    assert "VIRNUCPRO_TUI_EXIT_ON_DONE=1" in recipe  # the dashboard closes when the run is done
    readme = (ROOT / "README.md").read_text()
    assert DEMO_COMMAND in readme
    assert "press q" in readme  # how to leave the dashboard


def test_every_run_flag_fills_the_settings_field_it_names() -> None:
    """`run`'s options are declared once (cli/run_options.py): each flag given lands in its
    field of RunConfig, EngineSettings, PoolPolicy or WorkerSettings, and the defaults are the
    settings classes' own."""
    from virnucpro_tui.cli.run_options import RUN_OPTIONS, run_config, targets
    from virnucpro_tui.models.settings import EngineSettings
    from virnucpro_tui.pool.pool import PoolPolicy
    from virnucpro_tui.pool.worker_config import WorkerSettings

    parser = build_parser()
    defaults = run_config(parser.parse_args(["run", "a.fa", "--out", "o"]), models=None)
    assert defaults.engine == EngineSettings(force_model_length=True)
    assert defaults.policy == PoolPolicy() and defaults.worker == WorkerSettings()
    assert (defaults.devices, defaults.backend, defaults.shard_size) == ("auto", "local", None)
    assert (defaults.persistent, defaults.dedup, defaults.restart) == (True, True, False)
    assert (defaults.save_features, defaults.features_format) == (False, "pt")

    given = [
        *("run", "a.fa", "b.fa", "--out", "o", "--length", "300", "--devices", "cpu:2"),
        *("--precision", "bf16", "--backend", "ray", "--restart", "--no-persistent"),
        *("--shard-size", "64", "--esm-max-tokens", "100", "--dnabert-max-tokens", "200"),
        *("--no-compile", "--no-dedup", "--features-format", "safetensors"),
        *("--max-restarts", "7", "--hang-timeout", "9.5", "--memory-fraction", "0.5"),
        *("--clear-cache-every", "3", "--alloc-conf", "x:y"),
    ]
    cfg = run_config(parser.parse_args(given), models=None)
    assert cfg.inputs == [Path("a.fa"), Path("b.fa")] and cfg.out == Path("o")
    assert cfg.engine == EngineSettings(
        precision="bf16",
        esm_max_tokens=100,
        dnabert_max_tokens=200,
        chunk_length=300,
        force_model_length=True,
        compile=False,
    )
    assert (cfg.devices, cfg.backend, cfg.shard_size) == ("cpu:2", "ray", 64)
    assert (cfg.persistent, cfg.dedup, cfg.restart) == (False, False, True)
    assert (cfg.save_features, cfg.features_format) == (True, "safetensors")
    assert cfg.policy == PoolPolicy(max_restarts=7, hang_timeout_s=9.5)
    assert cfg.worker == WorkerSettings(clear_cache_every=3, memory_fraction=0.5, alloc_conf="x:y")
    for opt in RUN_OPTIONS:  # each names a real field (a typo would fail every run)
        target, name = opt.into.split(".") if opt.into else ("run", "out")
        assert name in {f.name for f in dataclasses.fields(targets()[target])}, opt.flags


def test_the_hang_timeout_help_gives_the_pools_own_start_allowance() -> None:
    """The help's number is a copy of ``PoolPolicy.start_timeout_s``: they must agree."""
    from virnucpro_tui.pool.pool import PoolPolicy

    allowance = f"{PoolPolicy().start_timeout_s:.0f}"
    assert f"a worker not started yet gets at least {allowance})" in help_of("run")
