"""``virnucpro-tui check-precision``: judge a precision on your own models and data
(docs/precision.md).

A sample of the input's frames (evenly spread) is scored twice through the engine, at fp32 and
at the chosen precision, and the scores and both models' embeddings are compared. The scoring
runs in a spawned child process: this process never initialises CUDA.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from virnucpro_tui.core.prepare import prepare_file
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.errors import EXIT_ERROR, InputError, VirnucproError

DEFAULT_FRAMES = 2000
HALF_PRECISIONS = ("bf16", "fp16")


@dataclass(frozen=True)
class Thresholds:
    """The verdict's limits (docs/precision.md#thresholds)."""

    max_flip_fraction: float = 0.001
    max_delta: float = 0.02
    max_delta_p99: float = 0.005
    min_cosine: float = 0.995


@dataclass(frozen=True)
class Comparison:
    """A precision against fp32 on the same frames."""

    frames: int
    flips: int
    flipped_ids: list[str]
    max_delta: float
    p99_delta: float
    worst_id: str
    min_cosine: dict[str, float]  # model label -> min cosine of its embeddings

    def checks(self, limits: Thresholds) -> list[tuple[str, str, str, bool]]:
        """(measure, value, limit, within) rows of the verdict."""
        fraction = self.flips / self.frames if self.frames else 0.0
        rows = [
            (
                "label flips",
                f"{self.flips:,} ({fraction:.2%})",
                f"<= {limits.max_flip_fraction:.2%}",
                fraction <= limits.max_flip_fraction,
            ),
            (
                "max |ΔP(virus)|",
                f"{self.max_delta:.2e}",
                f"<= {limits.max_delta:.2e}",
                self.max_delta <= limits.max_delta,
            ),
            (
                "p99 |ΔP(virus)|",
                f"{self.p99_delta:.2e}",
                f"<= {limits.max_delta_p99:.2e}",
                self.p99_delta <= limits.max_delta_p99,
            ),
        ]
        for model, cosine in self.min_cosine.items():
            rows.append(
                (
                    f"min cosine, {model}",
                    f"{cosine:.6f}",
                    f">= {limits.min_cosine}",
                    cosine >= limits.min_cosine,
                )
            )
        return rows


def compare(result: dict[str, Any]) -> Comparison:
    """The figures of the verdict, from the child's per-frame values."""
    ids = result["ids"]
    ref, test = np.asarray(result["p_ref"]), np.asarray(result["p_test"])
    delta = np.abs(test - ref)
    flipped = np.flatnonzero((ref > 0.5) != (test > 0.5))
    return Comparison(
        frames=len(ids),
        flips=len(flipped),
        flipped_ids=[ids[i] for i in flipped],
        max_delta=float(delta.max()) if len(ids) else 0.0,
        p99_delta=float(np.percentile(delta, 99)) if len(ids) else 0.0,
        worst_id=ids[int(delta.argmax())] if len(ids) else "",
        min_cosine={m: float(min(v, default=1.0)) for m, v in result["cosine"].items()},
    )


# --- the sample -----------------------------------------------------------------------------------


def evenly_spaced(total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(total)`` (all of them when ``n >= total``)."""
    if n >= total:
        return list(range(total))
    return [(2 * i + 1) * total // (2 * n) for i in range(n)]


def input_frames(path: Path, chunk_length: int) -> Iterator[Frame]:
    for record in prepare_file(path, chunk_length):
        yield from record.all_frames()


def sample_frames(path: Path, chunk_length: int, n: int) -> tuple[list[Frame], int]:
    """``n`` frames drawn evenly across the input (two streaming passes), and the total."""
    total = sum(1 for _ in input_frames(path, chunk_length))
    if total == 0:
        raise InputError(f"{path}: no frame to score (no chunk has a stop-free reading frame)")
    wanted = evenly_spaced(total, n)
    picked, next_pick = [], 0
    for i, frame in enumerate(input_frames(path, chunk_length)):
        if next_pick < len(wanted) and i == wanted[next_pick]:
            picked.append(frame)
            next_pick += 1
    return picked, total


# --- the device and the precision ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    device: str  # "cpu" or "cuda"
    uuid: str | None
    label: str
    precision: str  # as given: auto, fp8, bf16 or fp16
    per_model: dict[str, str]  # DNABERT-S / ESM-2 -> the precision each runs at


def choose_target(device_spec: str, precision: str) -> Target:
    """The device (through NVML: no CUDA here) and what the precision means on it."""
    from virnucpro_tui.models.engine import AUTO_GPU_PRECISION
    from virnucpro_tui.pool.devices import resolve_devices

    if device_spec != "auto" and device_spec != "cpu" and not device_spec.isdigit():
        raise InputError(f"--device {device_spec}: expected auto, cpu or one GPU index")
    slot = resolve_devices(device_spec)[0]
    if slot.kind == "cpu" and precision == "fp8":
        raise InputError(
            "--precision fp8 needs an NVIDIA GPU of compute capability 8.9 or newer; "
            "on the CPU, check bf16 or fp16"
        )
    if precision == "auto":
        auto = AUTO_GPU_PRECISION if slot.kind == "cuda" else {"esm": "fp32", "dnabert": "fp32"}
        per_model = {"DNABERT-S": auto["dnabert"], "ESM-2": auto["esm"]}
    else:
        per_model = {"DNABERT-S": precision, "ESM-2": precision}
    label = slot.label if slot.kind == "cuda" else "the CPU"
    return Target(slot.kind, slot.uuid, label, precision, per_model)


def describe(target: Target) -> str:
    models = ", ".join(f"{m} {p}" for m, p in target.per_model.items())
    return f"{target.precision} ({models})" if target.precision == "auto" else models


# --- the child process ----------------------------------------------------------------------------


def child_main(job: dict[str, Any], result_path: str) -> None:
    """Score the frames at fp32, then at the chosen precision (runs in a spawned process)."""
    if job["device"] == "cuda":
        os.environ["CUDA_VISIBLE_DEVICES"] = job["uuid"] or os.environ.get(
            "CUDA_VISIBLE_DEVICES", ""
        )
    try:
        result = _score_twice(job)
    except VirnucproError as exc:
        result = {"error": str(exc), "exit_code": exc.exit_code}
    except Exception as exc:  # noqa: BLE001 - reported as one line by the parent
        detail = (str(exc).strip().splitlines() or [""])[0]
        result = {"error": f"{type(exc).__name__}: {detail}", "exit_code": EXIT_ERROR}
    Path(result_path).write_text(json.dumps(result))


def _score_twice(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    device = torch.device("cuda" if job["device"] == "cuda" else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # the reference is fp32, not TF32
    files = ModelFiles(*(Path(job["files"][k]) for k in ("esm", "dnabert", "classifier")))
    frames = [Frame(*f) for f in job["frames"]]
    runs = {}
    for precision in ("fp32", job["precision"]):
        settings = EngineSettings(precision=precision, **job["engine"])
        start = time.perf_counter()
        runs[precision] = _embed_and_score(files, device, settings, frames)
        _say(f"{precision}: {len(frames):,} frames in {time.perf_counter() - start:.1f} s")
    (ref_dna, ref_esm, ref_p), (dna, esm_, p) = runs["fp32"], runs[job["precision"]]
    cosine = torch.nn.functional.cosine_similarity
    return {
        "ids": [f.id for f in frames],
        "p_ref": ref_p.tolist(),
        "p_test": p.tolist(),
        "cosine": {
            "DNABERT-S": cosine(dna, ref_dna, dim=1).tolist(),
            "ESM-2": cosine(esm_, ref_esm, dim=1).tolist(),
        },
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
    }


def _embed_and_score(files: Any, device: Any, settings: Any, frames: list[Frame]) -> tuple:
    """Both models' embeddings (float32, CPU) and P(virus), through the engine a run uses."""
    import torch

    from virnucpro_tui.models.classifier import predict_proba
    from virnucpro_tui.models.engine import Engine, empty_device_cache

    engine = Engine(files, device, settings)
    engine.load()
    dna = engine.embed("dnabert", [f.nucleotide for f in frames]).float()
    esm_ = engine.embed("esm", [f.protein for f in frames]).float()
    features = torch.cat([dna, esm_], dim=1).to(device)
    p_virus = predict_proba(engine.classifier, features)[:, 1].double().cpu()
    del engine, features
    empty_device_cache(device)
    return dna, esm_, p_virus


def _say(message: str) -> None:
    print(f"check-precision: {message}", file=sys.stderr, flush=True)


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="virnucpro-check-") as work:
        result_path = Path(work) / "result.json"
        proc = mp.get_context("spawn").Process(target=child_main, args=(job, str(result_path)))
        proc.start()
        try:
            proc.join()
        except KeyboardInterrupt:
            proc.terminate()
            proc.join()
            raise
        if not result_path.is_file():
            raise VirnucproError(
                f"the scoring process ended without a result (exit code {proc.exitcode})"
            )
        return json.loads(result_path.read_text())


# --- the command ----------------------------------------------------------------------------------


def report(comparison: Comparison, limits: Thresholds, target: Target) -> tuple[list[str], bool]:
    rows = comparison.checks(limits)
    lines = [f"{'measure':26} {'value':>16}  threshold"]
    lines += [
        f"{name:26} {value:>16}  {limit:<12} {'ok' if ok else 'OUTSIDE'}"
        for name, value, limit, ok in rows
    ]
    if comparison.flipped_ids:
        shown = ", ".join(comparison.flipped_ids[:5])
        more = (
            f" (+{len(comparison.flipped_ids) - 5} more)" if len(comparison.flipped_ids) > 5 else ""
        )
        lines.append(f"flipped frames: {shown}{more}")
    lines.append(f"largest |ΔP(virus)|: {comparison.worst_id}")
    within = all(ok for *_, ok in rows)
    if within:
        lines.append(
            "verdict: within the thresholds (docs/precision.md#thresholds): on this sample, "
            f"{describe(target)} give fp32's predictions"
        )
    else:
        failed = ", ".join(name for name, *_, ok in rows if not ok)
        lines.append(
            f"verdict: OUTSIDE the thresholds ({failed}; docs/precision.md#thresholds): do not "
            f"trust --precision {target.precision} with these models and data"
        )
    return lines, within


def main(args: argparse.Namespace, target: Target, files: Any, demo: bool) -> int:
    """Exit 0 within the thresholds, 1 outside them (2: bad usage, before any work)."""
    limits = Thresholds(args.max_flip_fraction, args.max_delta, args.max_delta_p99, args.min_cosine)
    if all(p == "fp32" for p in target.per_model.values()):
        print(
            "check-precision: on the CPU `run --precision auto` computes in fp32, the reference "
            "itself: nothing to check (pass --precision bf16 or fp16 to judge a half precision)"
        )
        return 0
    frames, total = sample_frames(args.input, args.length, args.frames)
    print(
        f"check-precision: {len(frames):,} of {total:,} frames of {args.input} (drawn evenly), "
        f"on {target.label}; fp32 against {describe(target)}"
        + ("; demo models (random weights)" if demo else ""),
        flush=True,
    )
    job = {
        "files": {k: str(getattr(files, k)) for k in ("esm", "dnabert", "classifier")},
        "frames": [tuple(f) for f in frames],
        "precision": args.precision,
        "device": target.device,
        "uuid": target.uuid,
        "engine": {
            "chunk_length": args.length,
            "force_model_length": True,
            "compile": args.compile,
            "compile_beside": False,  # the compiled path that a run's shards take once warm
            "esm_max_tokens": args.esm_max_tokens,
            "dnabert_max_tokens": args.dnabert_max_tokens,
        },
    }
    result = run_child(job)
    if "error" in result:
        error = VirnucproError(result["error"])
        error.exit_code = int(result.get("exit_code", EXIT_ERROR))
        raise error
    comparison = compare(result)
    lines, within = report(comparison, limits, target)
    print("\n".join(lines))
    if args.json:
        data = {
            "input": str(args.input),
            "frames_total": total,
            "device": result.get("device"),
            "precision": args.precision,
            "per_model": target.per_model,
            "thresholds": asdict(limits),
            "comparison": asdict(comparison),
            "within": within,
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0 if within else 1
