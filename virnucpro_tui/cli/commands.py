"""The commands behind ``virnucpro-tui run | prepare | attach | report | bench | models |
check-precision``: each checks its input, then hands it to its layer."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virnucpro_tui.cli.parser import PROG
from virnucpro_tui.cli.run_options import run_config, worker_settings
from virnucpro_tui.errors import InputError, VirnucproError, output_dir_problem

if TYPE_CHECKING:
    from virnucpro_tui.pool.local import LocalBackend

DEMO_COMMAND = (
    f"{PROG} run sample_data/sample_contigs.fa sample_data/sample_reads.fa.gz --demo --out demo_out"
)
LENGTHS = (300, 500)  # the chunk lengths the published classifiers were trained for


def _check_precision(precision: str, devices: str) -> None:
    """Refuse fp8 where it cannot run (CPU, GPUs before compute capability 8.9), before any
    input is read or model loaded; NVML only, the main process never initialises CUDA."""
    if precision != "fp8":
        return
    from virnucpro_tui.models.precision import require_precision_support
    from virnucpro_tui.pool.devices import device_capabilities

    require_precision_support(precision, device_capabilities(devices))


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
    """The inputs, once INPUT and --out are both given; a bare ``run`` names everything it
    lacks in one line (not only the first thing argparse checks)."""
    if args.inputs and args.out is not None:
        return list(args.inputs)
    demo = f"to try the demo models on the sample data, from the repository: {DEMO_COMMAND}"
    if not args.inputs and args.out is None:
        raise InputError(
            f"no INPUT and no --out given: `{PROG} run INPUT... --out DIR` scores FASTA or FASTQ "
            f"files into the run directory DIR; {demo}"
        )
    if args.out is None:
        raise InputError(
            "no --out given: the run directory for the outputs, events.jsonl and logs (created "
            "if missing; rerunning with the same --out resumes), e.g. --out results/"
        )
    raise InputError(f"no INPUT given (the FASTA or FASTQ files to score); {demo}")


def wants_ui(args: argparse.Namespace) -> bool:
    if args.no_ui or args.events_jsonl == "-":
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    from virnucpro_tui.core.fasta import scan_input

    _check_length(args.length, args.force_model_length)
    _check_precision(args.precision, args.devices)
    inputs = _inputs(args)
    local = _local_backend_with_standbys(args)  # they import torch while the run is checked
    try:
        scans = [scan_input(p, args.length) for p in inputs]  # bad input fails here
        files, demo = resolve_models(args)
        cfg = run_config(args, models=files, demo=demo, scans=scans)
        return _run(args, cfg, local or _ray_backend(args))
    finally:
        if local is not None:
            local.release()


def _run(args: argparse.Namespace, cfg: Any, backend: Any) -> int:
    from virnucpro_tui.run.orchestrator import Orchestrator

    sinks = _extra_sinks(args)
    if wants_ui(args):
        from virnucpro_tui.ui.launch import run_dashboard

        return run_dashboard(cfg, sinks, backend)
    from virnucpro_tui.console.headless import HeadlessReporter

    reporter = HeadlessReporter(interval_s=args.progress_interval)
    orchestrator = Orchestrator(cfg, [reporter, *sinks], backend=backend)
    return run_with_signals(orchestrator)


def _ray_backend(args: argparse.Namespace) -> Any:
    from virnucpro_tui.pool.ray import ray_backend

    return ray_backend(args.ray_address)


def _local_backend_with_standbys(args: argparse.Namespace) -> LocalBackend | None:
    """The local backend, with one worker interpreter per slot started now (pool/standby.py);
    none when the slots cannot be resolved yet (the run reports that itself) or with
    ``VIRNUCPRO_TUI_STANDBY=0``. None for Ray."""
    if args.backend == "ray":
        return None
    from virnucpro_tui.pool.local import LocalBackend
    from virnucpro_tui.pool.worker_config import slot_environments

    backend = LocalBackend()
    if os.environ.get("VIRNUCPRO_TUI_STANDBY") == "0":
        return backend
    try:
        slots = backend.resolve_slots(args.devices)
    except VirnucproError:
        return backend
    backend.prestart(slot_environments(slots, worker_settings(args)))
    return backend


def _extra_sinks(args: argparse.Namespace) -> list[Any]:
    if not args.events_jsonl:
        return []
    from virnucpro_tui.pool.event_sinks import JsonlWriter, StreamWriter

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


def cmd_report(args: argparse.Namespace) -> int:
    from virnucpro_tui.report.build import ReportOptions, build_report

    options = ReportOptions(
        out=args.out, partial=args.partial, sequences=args.sequences, region_gap=args.region_gap
    )
    written = build_report(args.run_dir, options)
    print(f"{'PARTIAL ' if args.partial else ''}report of {args.run_dir}:")
    for path in written:
        print(f"  {path}")
    return 0


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
    from virnucpro_tui.console.headless import attach
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
    from virnucpro_tui.measure.bench import main as bench_main

    return bench_main(args)


def cmd_models(args: argparse.Namespace) -> int:
    if args.models_command == "download":
        from virnucpro_tui.console.downloads import main as download_main

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
    from virnucpro_tui.core.fasta import scan_input
    from virnucpro_tui.measure.check_precision import choose_target
    from virnucpro_tui.measure.check_precision import main as check_main

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
    "report": cmd_report,
    "bench": cmd_bench,
    "models": cmd_models,
}
