"""Command line: ``virnucpro-tui run | prepare | attach | bench | models`` (exit codes: README, docs/reliability.md).

Exit codes: 0 success; 1 error; 2 usage or bad input (one clear line, no traceback);
130 interrupted (resumable).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from virnucpro_tui import __version__
from virnucpro_tui.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    InputError,
    VirnucproError,
    output_dir_problem,
)
from virnucpro_tui.models.settings import PRECISIONS

PROG = "virnucpro-tui"
DEMO_COMMAND = (
    f"{PROG} run sample_data/sample_contigs.fa sample_data/sample_reads.fa.gz --demo --out demo_out"
)
INPUT_HELP = "a FASTA file of nucleotide sequences (contigs or reads; plain or gzip)"
DIR_HELP = "the run directory: the --out of a `run` (its events.jsonl, manifest and lock)"
LENGTHS = (300, 500)  # the chunk lengths the published classifiers were trained for


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument(
        "--esm",
        type=Path,
        help="ESM-2 3B: a fair-esm .pt checkpoint or a transformers model directory",
    )
    g.add_argument("--dnabert", type=Path, help="DNABERT-S model directory (or a file inside it)")
    g.add_argument(
        "--classifier",
        type=Path,
        help="VirNucPro classifier (300_model.pth / 500_model.pth, state_dict or safetensors)",
    )
    g.add_argument(
        "--config",
        type=Path,
        help="TOML file naming model paths (keys esm, dnabert, classifier_300, classifier_500)",
    )
    g.add_argument(
        "--demo",
        action="store_true",
        help="use the built-in demo models (random weights: NOT biological predictions)",
    )
    g.add_argument(
        "--force-model-length",
        action="store_true",
        help="allow a --length other than 300 or 500, and a classifier trained for another "
        "chunk length (with a warning)",
    )


def _add_run_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="score FASTA inputs (live dashboard in a terminal, plain lines otherwise)",
        description="Score one or more FASTA files. Each input gets its outputs under --out "
        "(its own subdirectory when there are several). Rerun the same command to resume.",
    )
    p.add_argument(
        "inputs", nargs="*", type=Path, metavar="INPUT", help=f"{INPUT_HELP}; one or more"
    )
    p.add_argument(
        "--out", "-o", type=Path, required=True, help="run directory (outputs, events.jsonl, logs)"
    )
    p.add_argument("--length", type=int, default=500, help="chunk length: 300 or 500 (default 500)")
    _add_model_options(p)
    g = p.add_argument_group("execution")
    g.add_argument(
        "--devices",
        default="auto",
        help="auto (all visible GPUs, else one CPU worker), cpu:N, or GPU indices like 0,1",
    )
    g.add_argument(
        "--precision",
        default="auto",
        choices=list(PRECISIONS),
        help="auto: fp32 on CPU, half precision on GPU; fp32 keeps exact parity with the published "
        "tool; fp8: ESM-2 in FP8 (GPU of compute capability 8.9+, the gpu-fp8 extra; check it "
        "on your data with check-precision first)",
    )
    g.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local worker pool, or Ray actors",
    )
    g.add_argument("--ray-address", help="Ray cluster address (default: start or join a local one)")
    g.add_argument(
        "--restart", action="store_true", help="discard an earlier run in --out and start over"
    )
    g.add_argument(
        "--no-persistent",
        dest="persistent",
        action="store_false",
        help="start a fresh pool (and reload the models) for every input, like the published tool",
    )
    g.add_argument(
        "--shard-size", type=_positive_int, help="frames per shard (default 2048; 128 with --demo)"
    )
    g.add_argument(
        "--esm-max-tokens",
        type=_positive_int,
        help="token budget of one ESM-2 batch (default: sized from the device)",
    )
    g.add_argument(
        "--dnabert-max-tokens", type=_positive_int, help="token budget of one DNABERT-S batch"
    )
    g.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        default=None,
        help="do not torch.compile the models on GPU (faster start, slower run)",
    )
    g.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        help="compute every frame, even one identical to an earlier frame of the same input "
        "(by default it is computed once and its result copied)",
    )
    g = p.add_argument_group("features")
    g.add_argument(
        "--save-features",
        action="store_true",
        help="also save each frame's classifier input (DNABERT-S then ESM-2 embeddings, 3,328 "
        "values) per input, in prediction_results.txt order (docs/features.md)",
    )
    g.add_argument(
        "--features-format",
        choices=["pt", "safetensors"],
        help="pt: the published {'ids', 'data'} torch file (default); safetensors: a tensor "
        "'data' with the ids in a .ids.txt sidecar; giving a format implies --save-features",
    )
    from virnucpro_tui.pool.pool import PoolPolicy
    from virnucpro_tui.pool.worker import WorkerSettings

    policy, worker = PoolPolicy(), WorkerSettings()  # the defaults live there
    g = p.add_argument_group("supervision and memory")
    g.add_argument(
        "--max-restarts",
        type=int,
        default=policy.max_restarts,
        help=f"respawns per worker before it is retired (default {policy.max_restarts})",
    )
    g.add_argument(
        "--hang-timeout",
        type=float,
        default=policy.hang_timeout_s,
        help="seconds without a heartbeat before a worker is killed "
        f"(default {policy.hang_timeout_s:g})",
    )
    g.add_argument(
        "--memory-fraction",
        type=float,
        default=worker.memory_fraction,
        help=f"cap on each worker's share of its GPU memory (default {worker.memory_fraction})",
    )
    g.add_argument(
        "--clear-cache-every",
        type=int,
        default=worker.clear_cache_every,
        help=f"empty the CUDA cache every N shards (0: never; default {worker.clear_cache_every})",
    )
    g.add_argument(
        "--alloc-conf",
        default=worker.alloc_conf,
        help=f"PYTORCH_CUDA_ALLOC_CONF for the workers (default {worker.alloc_conf})",
    )
    g = p.add_argument_group("front end")
    g.add_argument(
        "--no-ui",
        action="store_true",
        help="plain progress lines instead of the dashboard (automatic without a terminal)",
    )
    g.add_argument(
        "--events-jsonl",
        metavar="PATH",
        help="also stream events as JSON Lines to PATH, or '-' for stdout",
    )
    g.add_argument(
        "--progress-interval", type=float, help="seconds between headless progress lines"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Production orchestrator for the VirNucPro viral-sequence identifier.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)

    p = sub.add_parser(
        "prepare",
        help="write the published intermediate files (chunks, identified frames)",
        description="Chunk INPUT and translate its six frames exactly as the published tool "
        "does, and write its three intermediate files into --out: <stem>_chunked<L>.fa, "
        "<stem>_identified_nucleotide.fa and <stem>_identified_protein.faa. No model is needed.",
    )
    p.add_argument("input", type=Path, metavar="INPUT", help=INPUT_HELP)
    p.add_argument("--length", type=int, default=500, help="chunk length: 300 or 500 (default 500)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output directory")

    p = sub.add_parser(
        "attach",
        help="watch a running or finished run from its run directory",
        description="Watch a run that another process executes (or has finished) from its run "
        "directory: the dashboard, read-only, in a terminal; plain lines otherwise. Exit status "
        "without the dashboard: 0 when the run completed (or, without --follow, is still "
        "running); 1 when it ended without completing (its process died, it was interrupted "
        "or it failed), with the command that resumes it.",
    )
    p.add_argument("run_dir", type=Path, metavar="DIR", help=DIR_HELP)
    p.add_argument(
        "--no-ui", action="store_true", help="print plain lines instead of the dashboard"
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="with --no-ui, keep printing until the run ends or its process dies",
    )

    p = sub.add_parser(
        "bench",
        help="measure the engine and the pipeline (random weights of the real shapes)",
        description="Measure the engine's stages, the scoring fidelity and the whole pipeline "
        "with random weights of the real model shapes (docs/benchmarks.md); --tiny checks the "
        "benchmark itself on the CPU in seconds.",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="tiny shapes on the CPU: checks the benchmark itself in seconds",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="write the results as JSON to PATH ('-': to stdout, the table then goes to stderr)",
    )
    p.add_argument("--quick", action="store_true", help="fewer samples (for a first look)")
    p.add_argument(
        "--precision",
        metavar="LIST",
        help="comma-separated precisions to measure (default: auto, plus fp8 on a GPU of "
        "compute capability 8.9+ with torchao installed)",
    )
    p.add_argument(
        "--skip",
        default="",
        metavar="SECTIONS",
        help="comma-separated sections to skip: prepare, stages, fidelity, baseline, pipeline, "
        "scaling",
    )

    p = sub.add_parser(
        "models",
        help="download, locate or build the models",
        description="The models a run uses: download the published ones, show which files a "
        "run would use, or build the demo models.",
    )
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    d = msub.add_parser(
        "demo",
        help="build the demo models (random weights) into DIR",
        description="Build tiny models with random weights in the real architectures and file "
        "formats into DIR (`run --demo` builds its own): their scores are NOT biological "
        "predictions.",
    )
    d.add_argument("dir", type=Path, metavar="DIR", help="the directory to write them into")
    d = msub.add_parser(
        "locate",
        help="show which model files a run would use",
        description="Show the model files a `run` with the same options would use, in the "
        "order they are looked up (options, --config, the standard caches), and check them.",
    )
    d.add_argument(
        "--length",
        type=int,
        default=500,
        help="the chunk length whose classifier to look for: 300 or 500 (default 500)",
    )
    _add_model_options(d)
    _add_models_download_parser(msub)
    _add_check_precision_parser(sub)
    return parser


def _check_precision(precision: str, devices: str) -> None:
    """Refuse fp8 where it cannot run (CPU, GPUs before compute capability 8.9), before any
    input is read or model loaded; NVML only, the main process never initialises CUDA."""
    if precision != "fp8":
        return
    from virnucpro_tui.models.precision import require_precision_support
    from virnucpro_tui.pool.devices import device_capabilities

    require_precision_support(precision, device_capabilities(devices))


def _add_check_precision_parser(sub: Any) -> None:
    from virnucpro_tui.check_precision import DEFAULT_FRAMES, Thresholds

    limits = Thresholds()
    p = sub.add_parser(
        "check-precision",
        help="judge a precision on your own models and data (fp32 against it, on a sample)",
        description="Score a sample of INPUT's frames (drawn evenly) at fp32 and at --precision, "
        "compare scores and embeddings, and give a verdict against the thresholds of "
        "docs/precision.md. Exit 0 within them, 1 outside them.",
    )
    p.add_argument("input", type=Path, metavar="INPUT", help="FASTA file (plain or gzip)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp8", "bf16", "fp16"],
        help="the precision to judge (default: what `run --precision auto` uses on this device)",
    )
    p.add_argument(
        "--frames",
        type=_positive_int,
        default=DEFAULT_FRAMES,
        help=f"frames in the sample (default {DEFAULT_FRAMES:,})",
    )
    p.add_argument("--length", type=int, default=500, help="chunk length: 300 or 500")
    _add_model_options(p)
    g = p.add_argument_group("execution")
    g.add_argument(
        "--device", default="auto", help="auto (first GPU, else CPU), cpu, or a GPU index"
    )
    g.add_argument(
        "--no-compile", dest="compile", action="store_false", default=None, help="as for run"
    )
    g.add_argument("--esm-max-tokens", type=_positive_int, help="as for run")
    g.add_argument("--dnabert-max-tokens", type=_positive_int, help="as for run")
    g.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    g = p.add_argument_group("thresholds (docs/precision.md#thresholds)")
    for option, field, meaning in (
        ("--max-flip-fraction", "max_flip_fraction", "largest share of frames whose label changes"),
        ("--max-delta", "max_delta", "largest |ΔP(virus)|"),
        ("--max-delta-p99", "max_delta_p99", "largest 99th percentile of |ΔP(virus)|"),
        ("--min-cosine", "min_cosine", "smallest cosine of an embedding to fp32's, per model"),
    ):
        default = getattr(limits, field)
        g.add_argument(option, type=float, default=default, help=f"{meaning} (default {default})")


def _add_models_download_parser(msub: Any) -> None:
    d = msub.add_parser(
        "download",
        help="download the published models (ESM-2 3B, DNABERT-S, the classifiers)",
        description="Download, verify and place the published models where `run` finds them "
        "(the standard caches, or --dest DIR with a models.toml). Interrupted downloads resume.",
    )
    d.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="esm, dnabert and/or classifier (default: all three)",
    )
    d.add_argument(
        "--dest",
        type=Path,
        help="put every file in DIR and write DIR/models.toml (default: the standard caches)",
    )
    d.add_argument(
        "--offline",
        action="store_true",
        help="never use the network: verify what is there, name what is missing "
        "(also when HF_HUB_OFFLINE=1)",
    )
    d.add_argument(
        "--mirror",
        metavar="URL",
        help="fetch the plain-HTTP files from URL/<host>/<path> ($VIRNUCPRO_TUI_MIRROR); "
        "DNABERT-S follows $HF_ENDPOINT",
    )


def _check_length(length: int, force: bool) -> None:
    """300 or 500, the lengths the published classifiers exist for; another length only with
    --force-model-length (demo models or not: the rule is the same)."""
    if not 30 <= length <= 100_000:
        raise InputError(f"--length {length}: expected 300 or 500")
    if length not in LENGTHS and not force:
        raise InputError(
            f"--length {length}: the published VirNucPro models exist for 300 and 500 bp only "
            "(--force-model-length uses another length anyway)"
        )


def resolve_models(args: argparse.Namespace) -> tuple[Any, bool]:
    """Model files for this run (demo or real), all checked (pre-flight, before the dashboard
    opens), with the classifier checked against --length."""
    from virnucpro_tui.models.classifier import check_chunk_length
    from virnucpro_tui.models.preflight import check_model_files
    from virnucpro_tui.models.settings import ModelFiles

    if args.demo:
        from virnucpro_tui.models.demo import ensure_demo_models

        demo = ensure_demo_models()
        classifier = demo.classifier_300 if args.length == 300 else demo.classifier_500
        files = ModelFiles(
            Path(args.esm or demo.esm),
            Path(args.dnabert or demo.dnabert),
            Path(args.classifier or classifier),
        )
    else:
        from virnucpro_tui.models.locate import resolve_model_paths

        found = resolve_model_paths(
            args.length,
            esm=args.esm,
            dnabert=args.dnabert,
            classifier=args.classifier,
            config=args.config,
        )
        files = ModelFiles(Path(found.esm), Path(found.dnabert), Path(found.classifier))
    bundle = check_model_files(files).classifier
    warning = check_chunk_length(bundle, args.length, force=args.force_model_length)
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return files, args.demo or bool(getattr(bundle, "demo", False))


def _inputs(args: argparse.Namespace) -> list[Path]:
    if args.inputs:
        return list(args.inputs)
    raise InputError(
        f"no INPUT given (the FASTA files to score); to try the demo models on the sample "
        f"data, from the repository: {DEMO_COMMAND}"
    )


def wants_ui(args: argparse.Namespace) -> bool:
    if args.no_ui or args.events_jsonl == "-":
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    from virnucpro_tui.core.fasta import scan_input
    from virnucpro_tui.models.settings import EngineSettings
    from virnucpro_tui.pool.pool import PoolPolicy
    from virnucpro_tui.pool.worker import WorkerSettings
    from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig

    _check_length(args.length, args.force_model_length)
    _check_precision(args.precision, args.devices)
    inputs = _inputs(args)
    scans = [scan_input(p, args.length) for p in inputs]  # bad input fails here, before any work
    files, demo = resolve_models(args)
    engine = EngineSettings(
        precision=args.precision,
        esm_max_tokens=args.esm_max_tokens,
        dnabert_max_tokens=args.dnabert_max_tokens,
        chunk_length=args.length,
        force_model_length=True,
        compile=args.compile,
    )
    cfg = RunConfig(
        inputs=inputs,
        out=args.out,
        models=files,
        demo=demo,
        devices=args.devices,
        engine=engine,
        shard_size=args.shard_size,
        persistent=args.persistent,
        restart=args.restart,
        backend=args.backend,
        dedup=args.dedup,
        save_features=args.save_features or args.features_format is not None,
        features_format=args.features_format or "pt",
        policy=PoolPolicy(max_restarts=args.max_restarts, hang_timeout_s=args.hang_timeout),
        worker=WorkerSettings(
            clear_cache_every=args.clear_cache_every,
            memory_fraction=args.memory_fraction,
            alloc_conf=args.alloc_conf,
        ),
        scans=scans,
    )
    sinks = _extra_sinks(args)
    backend = _backend(args)
    if wants_ui(args):
        from virnucpro_tui.ui.launch import run_dashboard

        return run_dashboard(cfg, sinks, backend)
    from virnucpro_tui.headless import HeadlessReporter

    reporter = HeadlessReporter(interval_s=args.progress_interval)
    orchestrator = Orchestrator(cfg, [reporter, *sinks], backend=backend)
    return run_with_signals(orchestrator)


def _backend(args: argparse.Namespace) -> Any:
    if args.backend != "ray":
        return None
    from virnucpro_tui.pool.ray_backend import ray_backend

    return ray_backend(args.ray_address)


def _extra_sinks(args: argparse.Namespace) -> list[Any]:
    if not args.events_jsonl:
        return []
    from virnucpro_tui.pool.events import JsonlWriter, StreamWriter

    if args.events_jsonl == "-":
        return [StreamWriter(sys.stdout)]
    return [JsonlWriter(args.events_jsonl)]


def run_with_signals(orchestrator: Any) -> int:
    """Run in the foreground: the first Ctrl-C or SIGTERM stops gracefully, the second abandons."""
    hits = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        hits["n"] += 1
        orchestrator.request_stop(abandon=hits["n"] > 1)
        if hits["n"] == 1:
            print(
                f"\n{PROG}: stopping after the shards in flight (again to abandon them)...",
                file=sys.stderr,
            )

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return orchestrator.execute()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def cmd_prepare(args: argparse.Namespace) -> int:
    from virnucpro_tui.core.fasta import scan_input
    from virnucpro_tui.core.prepare import write_intermediate_files

    _check_length(args.length, force=False)
    for warning in scan_input(args.input, args.length).warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    try:
        summary = write_intermediate_files(args.input, args.out, args.length)
    except OSError as exc:
        raise InputError(
            f"{args.out}: cannot write ({output_dir_problem(args.out, exc)})"
        ) from None
    print(
        f"{summary.records:,} sequences -> {summary.chunks:,} chunks ({summary.chunks_without_frames:,} "
        f"without a stop-free frame) -> {summary.frames:,} frames"
    )
    for path in summary.files:
        print(f"  {path}")
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from virnucpro_tui.headless import attach
    from virnucpro_tui.run.attach import check_run_dir

    ui = (
        not args.no_ui
        and sys.stdin.isatty()
        and sys.stdout.isatty()
        and os.environ.get("TERM", "") != "dumb"
    )
    if not ui:
        return attach(args.run_dir, follow=args.follow)
    check_run_dir(args.run_dir)
    from virnucpro_tui.ui.launch import attach_dashboard

    return int(attach_dashboard(args.run_dir))


def cmd_bench(args: argparse.Namespace) -> int:
    from virnucpro_tui.bench import main as bench_main

    return bench_main(args)


def cmd_models(args: argparse.Namespace) -> int:
    if args.models_command == "download":
        from virnucpro_tui.download_view import main as download_main

        return download_main(args)
    if args.models_command == "demo":
        from virnucpro_tui.models.demo import DEMO_NOTICE, build_demo_models

        built = build_demo_models(args.dir)
        print(
            f"demo models written to {built.root}\n  esm: {built.esm}\n"
            f"  dnabert: {built.dnabert}\n  classifier (300): {built.classifier_300}\n"
            f"  classifier (500): {built.classifier_500}\n{DEMO_NOTICE}"
        )
        return 0
    args.inputs = []
    _check_length(args.length, args.force_model_length)
    files, demo = resolve_models(args)
    print(
        f"esm: {files.esm}\ndnabert: {files.dnabert}\nclassifier: {files.classifier}"
        + ("\n(demo models)" if demo else "")
    )
    return 0


def cmd_check_precision(args: argparse.Namespace) -> int:
    from virnucpro_tui.check_precision import choose_target
    from virnucpro_tui.check_precision import main as check_main
    from virnucpro_tui.core.fasta import scan_input

    _check_length(args.length, args.force_model_length)
    scan_input(args.input, args.length)
    target = choose_target(args.device, args.precision)  # fp8 on a CPU stops here
    files, demo = resolve_models(args)
    return check_main(args, target, files, demo)


COMMANDS = {
    "check-precision": cmd_check_precision,
    "run": cmd_run,
    "prepare": cmd_prepare,
    "attach": cmd_attach,
    "bench": cmd_bench,
    "models": cmd_models,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VirnucproError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - last resort: one line, details on request
        if os.environ.get("VIRNUCPRO_TUI_DEBUG"):
            traceback.print_exc()
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (set VIRNUCPRO_TUI_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR


__all__ = ["main", "EXIT_USAGE"]
