"""The command line's surfaces: help for every command and option, the --length rule (the same
with --demo), ``run`` without an input, and the demo command of the README and the Makefile."""

from __future__ import annotations

import argparse
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


def test_the_demo_command_names_its_inputs_and_ends_by_itself() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "sample_data/sample_contigs.fa sample_data/sample_reads.fa.gz" in recipe
    assert "VIRNUCPRO_TUI_EXIT_ON_DONE=1" in recipe  # the dashboard closes when the run is done
    readme = (ROOT / "README.md").read_text()
    assert DEMO_COMMAND in readme
    assert "press q" in readme  # how to leave the dashboard
