"""The command line's parser: ``run`` from its option table (``run_options.py``), and the other
commands (``prepare``, ``attach``, ``report``, ``bench``, ``models``, ``check-precision``), each
declared the same way: a ``Command`` with its ``option(...)`` rows."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virnucpro_tui import __version__
from virnucpro_tui.cli.run_options import (
    INPUT_HELP,
    MODEL_OPTIONS,
    REGION_GAP,
    RUN_OPTIONS,
    Option,
    add_options,
    option,
    positive_int,
)

PROG = "virnucpro-tui"
DIR_HELP = "the run directory: the --out of a `run` (its events.jsonl, manifest and lock)"


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, its help line and description, and its options in order."""

    name: str
    help: str
    description: str
    options: tuple[Option, ...] = ()
    usage: str | None = None

    def add_to(self, sub: Any) -> argparse.ArgumentParser:
        usage = {"usage": self.usage} if self.usage else {}
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name, help=self.help, description=self.description, **usage
        )
        add_options(parser, self.options)
        return parser


def _sequence_ids(text: str) -> tuple[str, ...]:
    ids = tuple(s.strip() for s in text.split(",") if s.strip())
    if not ids:
        raise argparse.ArgumentTypeError("give sequence ids separated by commas")
    return ids


def _chunk_length(help: str = "chunk length: 300 or 500 (default 500)") -> Option:
    return option("--length", type=int, default=500, help=help)


RUN = Command(
    "run",
    usage=f"{PROG} run INPUT... --out DIR [options]",
    help="score FASTA or FASTQ inputs (live dashboard in a terminal, plain lines otherwise)",
    description="Score one or more FASTA or FASTQ files. Each input gets its outputs under --out "
    "(its own subdirectory when there are several). Rerun the same command to resume.",
    options=RUN_OPTIONS,
)
PREPARE = Command(
    "prepare",
    help="write the published intermediate files (chunks, identified frames)",
    description="Chunk INPUT and translate its six frames exactly as the published tool "
    "does, and write its three intermediate files into --out: <stem>_chunked<L>.fa, "
    "<stem>_identified_nucleotide.fa and <stem>_identified_protein.faa. No model is needed.",
    options=(
        option("input", type=Path, metavar="INPUT", help=INPUT_HELP),
        _chunk_length(),
        option("--out", "-o", type=Path, required=True, help="output directory"),
    ),
)
ATTACH = Command(
    "attach",
    help="watch a running or finished run from its run directory",
    description="Watch a run that another process executes (or has finished) from its run "
    "directory: the dashboard, read-only, in a terminal; plain lines otherwise. Exit status "
    "without the dashboard: 0 when the run completed (or, without --follow, is still "
    "running); 1 when it ended without completing (its process died, it was interrupted "
    "or it failed), with the command that resumes it.",
    options=(
        option("run_dir", type=Path, metavar="DIR", help=DIR_HELP),
        option("--no-ui", action="store_true", help="print plain lines instead of the dashboard"),
        option(
            "--follow",
            action="store_true",
            help="with --no-ui, keep printing until the run ends or its process dies",
        ),
    ),
)
REPORT = Command(
    "report",
    help="rebuild a finished run's viral sequences, regions, figure and report.html",
    description="Build viral_sequences.fa, viral_regions.tsv/.bed, prediction.png/.svg "
    "(per input) and report.html from a run directory, with no models and no GPU "
    "(docs/outputs.md). `run` builds them at the end of each input already.",
    options=(
        option("run_dir", type=Path, metavar="RUN_DIR", help=DIR_HELP),
        option("--out", "-o", type=Path, help="where to write them (default: the run directory)"),
        option(
            "--partial",
            action="store_true",
            help="a run not finished: report the verified shards so far, marked PARTIAL "
            "(default --out: RUN_DIR/report-partial)",
        ),
        option(
            "--sequences",
            type=_sequence_ids,
            metavar="ID,...",
            help="draw these sequences' tracks (default: the 20 called virus with the most viral "
            "chunks, then by score)",
        ),
        REGION_GAP,
    ),
)
BENCH = Command(
    "bench",
    help="measure the engine and the pipeline (random weights of the real shapes)",
    description="Measure the engine's stages, the scoring fidelity and the whole pipeline "
    "with random weights of the real model shapes (docs/benchmarks.md); --tiny checks the "
    "benchmark itself on the CPU in seconds.",
    options=(
        option(
            "--tiny",
            action="store_true",
            help="tiny shapes on the CPU: checks the benchmark itself in seconds",
        ),
        option(
            "--json",
            type=Path,
            metavar="PATH",
            help="write the results as JSON to PATH ('-': to stdout, the table then goes to "
            "stderr)",
        ),
        option("--quick", action="store_true", help="fewer samples (for a first look)"),
        option(
            "--precision",
            metavar="LIST",
            help="comma-separated precisions to measure (default: auto, plus fp8 on a GPU of "
            "compute capability 8.9+ with torchao installed)",
        ),
        option(
            "--skip",
            default="",
            metavar="SECTIONS",
            help="comma-separated sections to skip: prepare, stages, fidelity, baseline, "
            "pipeline, scaling",
        ),
    ),
)
MODELS = Command(
    "models",
    help="download, locate or build the models",
    description="The models a run uses: download the published ones, show which files a "
    "run would use, or build the demo models.",
)
MODELS_DEMO = Command(
    "demo",
    help="build the demo models (random weights) into DIR",
    description="Build tiny models with random weights in the real architectures and file "
    "formats into DIR (`run --demo` builds its own): their scores are NOT biological "
    "predictions.",
    options=(option("dir", type=Path, metavar="DIR", help="the directory to write them into"),),
)
MODELS_LOCATE = Command(
    "locate",
    help="show which model files a run would use",
    description="Show the model files a `run` with the same options would use, in the "
    "order they are looked up (options, --config, the standard caches), and check them.",
    options=(
        _chunk_length("the chunk length whose classifier to look for: 300 or 500 (default 500)"),
        *MODEL_OPTIONS,
    ),
)
MODELS_DOWNLOAD = Command(
    "download",
    help="download the published models (ESM-2 3B, DNABERT-S, the classifiers)",
    description="Download, verify and place the published models where `run` finds them "
    "(the standard caches, or --dest DIR with a models.toml). Interrupted downloads resume.",
    options=(
        option(
            "models",
            nargs="*",
            metavar="MODEL",
            help="esm, dnabert and/or classifier (default: all three)",
        ),
        option(
            "--dest",
            type=Path,
            help="put every file in DIR and write DIR/models.toml (default: the standard caches)",
        ),
        option(
            "--offline",
            action="store_true",
            help="never use the network: verify what is there, name what is missing "
            "(also when HF_HUB_OFFLINE=1)",
        ),
        option(
            "--mirror",
            metavar="URL",
            help="fetch the plain-HTTP files from URL/<host>/<path> ($VIRNUCPRO_TUI_MIRROR); "
            "DNABERT-S follows $HF_ENDPOINT",
        ),
    ),
)


def _check_precision() -> Command:
    from virnucpro_tui.measure.check_precision import DEFAULT_FRAMES, Thresholds

    limits, execution = Thresholds(), "execution"
    thresholds = "thresholds (docs/precision.md#thresholds)"
    return Command(
        "check-precision",
        help="judge a precision on your own models and data (fp32 against it, on a sample)",
        description="Score a sample of INPUT's frames (drawn evenly) at fp32 and at "
        "--precision, compare scores and embeddings, and give a verdict against the thresholds "
        "of docs/precision.md. Exit 0 within them, 1 outside them.",
        options=(
            option("input", type=Path, metavar="INPUT", help=INPUT_HELP),
            option(
                "--precision",
                default="auto",
                choices=["auto", "fp8", "bf16", "fp16"],
                help="the precision to judge (default: what `run --precision auto` uses on this "
                "device)",
            ),
            option(
                "--frames",
                type=positive_int,
                default=DEFAULT_FRAMES,
                help=f"frames in the sample (default {DEFAULT_FRAMES:,})",
            ),
            _chunk_length("chunk length: 300 or 500"),
            *MODEL_OPTIONS,
            option(
                "--device",
                default="auto",
                help="auto (first GPU, else CPU), cpu, or a GPU index",
                group=execution,
            ),
            option(
                "--no-compile",
                dest="compile",
                action="store_false",
                default=None,
                help="as for run",
                group=execution,
            ),
            option("--esm-max-tokens", type=positive_int, help="as for run", group=execution),
            option("--dnabert-max-tokens", type=positive_int, help="as for run", group=execution),
            option(
                "--json",
                type=Path,
                metavar="PATH",
                help="also write the figures as JSON",
                group=execution,
            ),
            *(
                option(
                    flag,
                    type=float,
                    default=getattr(limits, flag[2:].replace("-", "_")),
                    help=f"{meaning} (default {{default}})",
                    group=thresholds,
                )
                for flag, meaning in (
                    ("--max-flip-fraction", "largest share of frames whose label changes"),
                    ("--max-delta", "largest |ΔP(virus)|"),
                    ("--max-delta-p99", "largest 99th percentile of |ΔP(virus)|"),
                    ("--min-cosine", "smallest cosine of an embedding to fp32's, per model"),
                )
            ),
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Production orchestrator for the VirNucPro viral-sequence identifier.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (RUN, PREPARE, ATTACH, REPORT, BENCH):
        command.add_to(sub)
    models = MODELS.add_to(sub).add_subparsers(
        dest="models_command", required=True, metavar="ACTION"
    )
    for action in (MODELS_DEMO, MODELS_LOCATE, MODELS_DOWNLOAD):
        action.add_to(models)
    _check_precision().add_to(sub)
    return parser
