"""The options of ``run``, each declared once in ``RUN_OPTIONS``: the parser and the run's
settings (``RunConfig`` with its ``EngineSettings``, ``PoolPolicy`` and ``WorkerSettings``) are
both built from this table, so a new run flag is one ``option(...)`` here plus the settings field
it fills (docs/architecture.md#the-command-line)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virnucpro_tui.models.settings import PRECISIONS

if TYPE_CHECKING:
    from virnucpro_tui.pool.worker_config import WorkerSettings
    from virnucpro_tui.run.config import RunConfig

INPUT_HELP = (
    "a FASTA or FASTQ file of nucleotide sequences (contigs or reads; plain, gzip, bzip2, xz "
    "or zstd, recognised by content)"
)


def targets() -> dict[str, type]:
    """Where a flag's value goes: ``into="engine.precision"`` fills ``EngineSettings.precision``
    (imported here, not at the top: ``--help`` and ``attach`` need none of them)."""
    from virnucpro_tui.models.settings import EngineSettings
    from virnucpro_tui.pool.pool import PoolPolicy
    from virnucpro_tui.pool.worker_config import WorkerSettings
    from virnucpro_tui.run.config import RunConfig

    return {
        "run": RunConfig,
        "engine": EngineSettings,
        "policy": PoolPolicy,
        "worker": WorkerSettings,
    }


@dataclass(frozen=True)
class Option:
    """One flag: how argparse reads it, and which settings field it fills."""

    flags: tuple[str, ...]
    help: str
    into: str = ""  # "<target>.<field>"; "": read by the command itself (models, front end)
    group: str = ""  # the help's group title; "": the command's own arguments
    value: Callable[[argparse.Namespace], Any] | None = None  # when not the flag's own value
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # argparse's

    @property
    def dest(self) -> str:
        return str(self.kwargs.get("dest") or self.flags[0].lstrip("-").replace("-", "_"))

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        """Declare the flag; its default is the one of the field it fills, unless it names its
        own (so each default lives in one place, the settings class)."""
        kwargs = dict(self.kwargs)
        if self.into and "default" not in kwargs:
            target, name = self.into.split(".")
            (spec,) = (f for f in dataclasses.fields(targets()[target]) if f.name == name)
            if spec.default is not dataclasses.MISSING:
                kwargs["default"] = spec.default
        default = kwargs.get("default")
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        parser.add_argument(*self.flags, help=self.help.replace("{default}", shown), **kwargs)


def option(
    *flags: str,
    help: str,
    into: str = "",
    group: str = "",
    value: Callable[[argparse.Namespace], Any] | None = None,
    **kwargs: Any,
) -> Option:
    return Option(flags, help, into, group, value, kwargs)


def non_negative_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {number}")
    return number


REGION_GAP = option(
    "--region-gap",
    type=non_negative_int,
    default=0,
    metavar="K",
    help="merge viral regions separated by at most K non-viral chunks (default {default})",
    group="report (docs/outputs.md)",
)
"""Shared by ``run`` (the report it builds at the end of each input) and ``report``."""


def report_hook(args: argparse.Namespace) -> Any:
    """The job-finished hook that builds the report (docs/outputs.md), or None (--no-report)."""
    if not args.report:
        return None
    from virnucpro_tui.report.hook import ReportHook

    return ReportHook(region_gap=args.region_gap)


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {number}")
    return number


MODELS = "models"
MODEL_OPTIONS = (
    option(
        "--esm",
        type=Path,
        help="ESM-2 3B: a fair-esm .pt checkpoint or a transformers model directory",
        group=MODELS,
    ),
    option(
        "--dnabert", type=Path, help="DNABERT-S model directory (or a file inside it)", group=MODELS
    ),
    option(
        "--classifier",
        type=Path,
        help="VirNucPro classifier (300_model.pth / 500_model.pth, state_dict or safetensors)",
        group=MODELS,
    ),
    option(
        "--config",
        type=Path,
        help="TOML file naming model paths (keys esm, dnabert, classifier_300, classifier_500)",
        group=MODELS,
    ),
    option(
        "--demo",
        action="store_true",
        help="use the built-in demo models (random weights: NOT biological predictions)",
        group=MODELS,
    ),
    option(
        "--force-model-length",
        action="store_true",
        help="allow a --length other than 300 or 500, and a classifier trained for another "
        "chunk length (with a warning)",
        group=MODELS,
    ),
)
"""The model options: ``run``, ``models locate`` and ``check-precision`` share them."""

EXECUTION, FEATURES = "execution", "features"
SUPERVISION, FRONT_END = "supervision and memory", "front end"
RUN_OPTIONS = (
    option(
        "inputs",
        nargs="*",
        type=Path,
        metavar="INPUT",
        help=f"{INPUT_HELP}; one or more",
        into="run.inputs",
        value=lambda args: list(args.inputs),
    ),
    option(
        "--out",
        "-o",
        type=Path,
        metavar="DIR",
        help="the run directory (needed): outputs, events.jsonl, logs; created if missing, and "
        "rerunning with the same --out resumes",
        into="run.out",
    ),
    option(
        "--length",
        type=int,
        help="chunk length: 300 or 500 (default {default})",
        into="engine.chunk_length",
    ),
    *MODEL_OPTIONS,
    option(
        "--devices",
        help="auto (all visible GPUs, else one CPU worker), cpu:N, or GPU indices like 0,1",
        into="run.devices",
        group=EXECUTION,
    ),
    option(
        "--precision",
        choices=list(PRECISIONS),
        help="auto: fp32 on CPU, half precision on GPU; fp32 keeps exact parity with the published "
        "tool; fp8: ESM-2 in FP8 (GPU of compute capability 8.9+, the gpu-fp8 extra; check it "
        "on your data with check-precision first)",
        into="engine.precision",
        group=EXECUTION,
    ),
    option(
        "--backend",
        choices=["local", "ray"],
        help="local worker pool, or Ray actors",
        into="run.backend",
        group=EXECUTION,
    ),
    option(
        "--ray-address",
        help="Ray cluster address (default: start or join a local one)",
        group=EXECUTION,
    ),
    option(
        "--restart",
        action="store_true",
        help="discard an earlier run in --out and start over",
        into="run.restart",
        group=EXECUTION,
    ),
    option(
        "--no-persistent",
        dest="persistent",
        action="store_false",
        help="start a fresh pool (and reload the models) for every input, like the published tool",
        into="run.persistent",
        group=EXECUTION,
    ),
    option(
        "--shard-size",
        type=positive_int,
        help="frames per shard (default 2048; 128 with --demo)",
        into="run.shard_size",
        group=EXECUTION,
    ),
    option(
        "--esm-max-tokens",
        type=positive_int,
        help="token budget of one ESM-2 batch (default: sized from the device)",
        into="engine.esm_max_tokens",
        group=EXECUTION,
    ),
    option(
        "--dnabert-max-tokens",
        type=positive_int,
        help="token budget of one DNABERT-S batch",
        into="engine.dnabert_max_tokens",
        group=EXECUTION,
    ),
    option(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="do not torch.compile the models on GPU (faster start, slower run)",
        into="engine.compile",
        group=EXECUTION,
    ),
    option(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        help="compute every frame, even one identical to an earlier frame of the same input "
        "(by default it is computed once and its result copied)",
        into="run.dedup",
        group=EXECUTION,
    ),
    option(
        "--save-features",
        action="store_true",
        help="also save each frame's classifier input (DNABERT-S then ESM-2 embeddings, 3,328 "
        "values) per input, in prediction_results.txt order (docs/features.md)",
        into="run.save_features",
        value=lambda args: args.save_features or args.features_format is not None,
        group=FEATURES,
    ),
    option(
        "--features-format",
        choices=["pt", "safetensors"],
        default=None,
        help="pt: the published {'ids', 'data'} torch file (default); safetensors: a tensor "
        "'data' with the ids in a .ids.txt sidecar; giving a format implies --save-features",
        into="run.features_format",
        value=lambda args: args.features_format or "pt",
        group=FEATURES,
    ),
    option(
        "--max-restarts",
        type=int,
        help="respawns per worker before it is retired (default {default})",
        into="policy.max_restarts",
        group=SUPERVISION,
    ),
    option(
        "--hang-timeout",
        type=float,
        help="seconds without a heartbeat before a worker is killed (default {default}; a "
        "worker not started yet gets at least 60)",
        into="policy.hang_timeout_s",
        group=SUPERVISION,
    ),
    option(
        "--memory-fraction",
        type=float,
        help="cap on each worker's share of its GPU memory (default {default})",
        into="worker.memory_fraction",
        group=SUPERVISION,
    ),
    option(
        "--clear-cache-every",
        type=int,
        help="empty the CUDA cache every N shards (0: never; default {default})",
        into="worker.clear_cache_every",
        group=SUPERVISION,
    ),
    option(
        "--alloc-conf",
        help="PYTORCH_CUDA_ALLOC_CONF for the workers (default {default})",
        into="worker.alloc_conf",
        group=SUPERVISION,
    ),
    option(
        "--no-report",
        dest="report",
        action="store_false",
        default=True,
        help="do not build viral_sequences.fa, the viral regions, prediction.png/.svg and "
        "report.html at the end of each input (`virnucpro-tui report` builds them later)",
        into="run.on_job_finished",
        value=report_hook,
        group=REGION_GAP.group,
    ),
    REGION_GAP,
    option(
        "--no-ui",
        action="store_true",
        help="plain progress lines instead of the dashboard (automatic without a terminal)",
        group=FRONT_END,
    ),
    option(
        "--events-jsonl",
        metavar="PATH",
        help="also stream events as JSON Lines to PATH, or '-' for stdout",
        group=FRONT_END,
    ),
    option(
        "--progress-interval",
        type=float,
        help="seconds between headless progress lines",
        group=FRONT_END,
    ),
)


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Declare ``options`` on ``parser``, each group created where its first option stands."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in options:
        if not opt.group:
            opt.add_to(parser)
            continue
        if opt.group not in groups:
            groups[opt.group] = parser.add_argument_group(opt.group)
        opt.add_to(groups[opt.group])


def run_config(args: argparse.Namespace, **derived: Any) -> RunConfig:
    """The run's settings from its parsed flags (``RUN_OPTIONS``), plus what the command derived
    from them and checked (``models``, ``demo``, ``scans``)."""
    kinds, values = targets(), _values(args)
    # the command has checked --length against the classifier already (cli/commands.py)
    engine = kinds["engine"](force_model_length=True, **values["engine"])
    policy, worker = kinds["policy"](**values["policy"]), kinds["worker"](**values["worker"])
    config: RunConfig = kinds["run"](
        engine=engine, policy=policy, worker=worker, **values["run"], **derived
    )
    return config


def worker_settings(args: argparse.Namespace) -> WorkerSettings:
    """The workers' settings alone, before the models are checked (their standbys start then)."""
    settings: WorkerSettings = targets()["worker"](**_values(args)["worker"])
    return settings


def _values(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each flag's value, by the settings class (``targets``) and field it goes into."""
    values: dict[str, dict[str, Any]] = {target: {} for target in targets()}
    for opt in RUN_OPTIONS:
        if opt.into:
            target, name = opt.into.split(".")
            values[target][name] = opt.value(args) if opt.value else getattr(args, opt.dest)
    return values


__all__ = [
    "MODEL_OPTIONS",
    "REGION_GAP",
    "RUN_OPTIONS",
    "Option",
    "add_options",
    "run_config",
    "worker_settings",
]
