"""``virnucpro-tui bench``: the engine and the pipeline on random weights of the real shapes.

Sections (targets in docs/benchmarks.md): the device's matmul peak; preparation on one CPU core;
ESM-2 and DNABERT-S alone through the engine the workers run, per precision; fidelity of each
precision against fp32; the published tool's settings on a subsample; the whole pipeline
through the real pool and run directory per precision, with the time from start to the first
shard on a cold and on a warm compile cache; and, on several GPUs, one against all of them.

GPU work runs in a child process (``bench_child``): the bench's main process, like the
orchestrator, never initialises CUDA. ``--tiny`` runs the same code with tiny shapes on the
CPU and says so in every label. Temporary files (a 5.7 GB checkpoint on a GPU) are removed at
exit, on error and on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from virnucpro_tui.measure.bench_child import SENSE, TINY, Shapes, log
from virnucpro_tui.measure.command_start import Launch, command_starts


def esm_flops_per_protein(s: Shapes, length: int) -> float:
    """Matmul FLOPs of one protein of ``length`` residues (+BOS/EOS) through ESM-2."""
    t = length + 2
    per_token = s.esm_layers * (
        2 * (4 * s.esm_dim**2 + 2 * s.esm_dim * 4 * s.esm_dim) + 4 * t * s.esm_dim
    )
    return per_token * t


# --- the pipeline through the real pool (main process) -------------------------------------------


def write_frames_fasta(path: Path, n_frames: int, seed: int) -> None:
    """500-bp ORF-rich sequences; each yields about one kept frame per chunk."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n_frames):
            fh.write(f">bench_{seed}_{i}\n{''.join(rng.choices(SENSE, k=167))[:500]}\n")


def run_pipeline(
    files: dict[str, str],
    out_dir: Path,
    inputs: list[Path],
    devices: str,
    engine: dict[str, Any],
    shard_size: int,
) -> tuple[int, list[dict[str, Any]], float]:
    """One run of the orchestrator; returns its exit code, its events and when it started."""
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles
    from virnucpro_tui.pool.event_sinks import read_events
    from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig

    cfg = RunConfig(
        inputs=inputs,
        out=out_dir,
        devices=devices,
        restart=True,
        models=ModelFiles(Path(files["esm"]), Path(files["dnabert"]), Path(files["classifier"])),
        engine=EngineSettings(chunk_length=500, force_model_length=True, **engine),
        shard_size=shard_size,
    )
    started = time.time()
    code = Orchestrator(cfg, []).execute()
    return code, read_events(out_dir / "events.jsonl"), started


def pipeline(
    s: Shapes,
    files: dict[str, str],
    work: Path,
    devices: str,
    engine: dict[str, Any],
    warm_start: bool = True,
) -> dict[str, Any]:
    """A warm-up job and the measured job on a cold compile cache, then one shard on the warm
    cache in a new pool: steady frames/s and the time from start to the first shard, both."""
    warm, main = work / "warmup.fa", work / "measured.fa"
    if not main.exists():
        write_frames_fasta(warm, s.pipeline_warmup_frames, seed=11)
        write_frames_fasta(main, s.pipeline_frames, seed=12)
    tag = engine["precision"]
    code, events, started = run_pipeline(
        files, work / f"run-{tag}", [warm, main], devices, engine, s.shard_size
    )
    if code != 0:
        raise RuntimeError(f"the {tag} pipeline run failed (exit code {code})")
    out = pipeline_metrics(events, code)
    out.update(first_shard(events, started, "cold"))
    if warm_start:
        one_shard = work / "one_shard.fa"
        write_frames_fasta(one_shard, s.shard_size, seed=13)
        _, events, started = run_pipeline(
            files, work / f"warm-{tag}", [one_shard], devices, engine, s.shard_size
        )
        out.update(first_shard(events, started, "warm"))
        launch = Launch(devices, s.shard_size)
        out["command_warm"] = command_starts(files, work, engine, launch, one_shard)
    return out


def first_shard(events: list[dict[str, Any]], started: float, cache: str) -> dict[str, Any]:
    """Seconds from the orchestrator's start to the models being ready (first shard started)
    and to the first shard's scores written, and the warm-up phase per model."""
    begun = [e["ts"] for e in events if e["type"] == "progress" and e.get("stage") == "start"]
    done = [e["ts"] for e in events if e["type"] == "shard_done"]
    warmups = {
        e["model"]: e["seconds"]
        for e in events
        if e["type"] == "model_load" and e.get("phase") == "warmup_done"
    }
    loads = {
        e["model"]: e["seconds"]
        for e in events
        if e["type"] == "model_load" and e.get("phase") == "done"
    }
    return {
        f"first_shard_start_s_{cache}": round(min(begun) - started, 2) if begun else None,
        f"first_shard_done_s_{cache}": round(min(done) - started, 2) if done else None,
        f"warmup_s_{cache}": warmups,
        f"load_s_{cache}": loads,
    }


def pipeline_metrics(
    events: list[dict[str, Any]], code: int, measured: str = "measured"
) -> dict[str, Any]:
    """Steady-state frames/s of the measured job: per worker, the frames of its shards after its
    first one over the time between its first and last completion; summed over workers. Only
    shards that began after their worker's models ran compiled count (a cold cache's first
    shards run uncompiled while the models compile beside, models/beside.py)."""
    started = {e["job"]: e["ts"] for e in events if e["type"] == "job_started"}
    done = {e["job"]: e for e in events if e["type"] == "job_done"}
    compiled_from: dict[int, float] = {}
    for e in events:
        if e["type"] == "model_load" and e["phase"] == "compile_beside_done":
            compiled_from[e["worker"]] = max(compiled_from.get(e["worker"], 0.0), e["ts"])
    shards = [
        e
        for e in events
        if e["type"] == "shard_done"
        and e["job"] == measured
        and e["ts"] - e["seconds"] >= compiled_from.get(e["worker"], 0.0)
    ]
    rate = 0.0
    for worker in {e["worker"] for e in shards}:
        mine = sorted((e for e in shards if e["worker"] == worker), key=lambda e: e["ts"])
        if len(mine) >= 2:
            rate += sum(e["frames"] for e in mine[1:]) / (mine[-1]["ts"] - mine[0]["ts"])
    loads = [e for e in events if e["type"] == "model_load" and e["phase"] == "done"]
    warm_from = min(
        (d["ts"] for j, d in done.items() if j != measured), default=started.get(measured, 0)
    )
    per_worker: dict[int, float] = {}
    for e in loads:
        if e["ts"] <= warm_from:
            per_worker[e["worker"]] = (
                per_worker.get(e["worker"], 0.0) + e["seconds"] + (e.get("compile_seconds") or 0)
            )
    frames = done[measured]["frames"]
    return {
        "pipeline_exit_code": code,
        "pipeline_frames": frames,
        "pipeline_frames_per_s": rate or None,
        "pipeline_job_frames_per_s": frames
        / (done[measured]["ts"] - _first_work(events, measured, started[measured])),
        "model_load_s_first": max(per_worker.values(), default=None),
        "model_load_s_warm": sum(e["seconds"] for e in loads if e["ts"] > warm_from),
        "pipeline_workers": len({e["worker"] for e in loads}),
        "stage_seconds_per_frame": _stage_seconds_per_frame(shards),
    }


def _stage_seconds_per_frame(shards: list[dict[str, Any]]) -> dict[str, float]:
    """GPU-synchronised seconds per frame by stage over the measured job's shards, and how much
    of the shards' time the stages account for (1.0: they add up)."""
    frames = sum(e["frames"] for e in shards) or 1
    totals: dict[str, float] = {}
    for e in shards:
        for stage, seconds in (e.get("stage_seconds") or {}).items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    out = {k: v / frames for k, v in totals.items()}
    shard_seconds = sum(e["seconds"] for e in shards)
    if shard_seconds:
        out["share_of_shard_seconds"] = sum(totals.values()) / shard_seconds
    return out


def _first_work(events: list[dict[str, Any]], job: str, default: float) -> float:
    """When a worker started on the job's first shard (its wall time then includes assembly)."""
    return min(
        (e["ts"] for e in events if e["type"] == "progress" and e["job"] == job), default=default
    )


def scaling(
    s: Shapes, files: dict[str, str], work: Path, gpus: int, engine: dict[str, Any]
) -> dict[str, Any]:
    """The same job on one GPU and on all ``gpus`` (warm compile cache, eager model loading):
    job-level frames/s (first shard started to outputs written) and the efficiency."""
    job = work / "measured.fa"
    write_frames_fasta(job, s.scaling_frames, seed=14)
    out: dict[str, Any] = {"frames": s.scaling_frames, "shard_size": s.scaling_shard_size}
    for n in (1, gpus):
        devices = ",".join(str(i) for i in range(n))
        code, events, _ = run_pipeline(
            files, work / f"scaling-{n}", [job], devices, engine, s.scaling_shard_size
        )
        m = pipeline_metrics(events, code)
        out[f"{n}_gpu_job_frames_per_s"] = m["pipeline_job_frames_per_s"]
        out[f"{n}_gpu_steady_frames_per_s"] = m["pipeline_frames_per_s"]
        log(f"scaling: {n} GPU(s) {m['pipeline_job_frames_per_s']:.0f} frames/s (job)")
    out["job_efficiency"] = out[f"{gpus}_gpu_job_frames_per_s"] / (
        gpus * out["1_gpu_job_frames_per_s"]
    )
    out["gpus"] = gpus
    return out


# --- orchestration, table, JSON ------------------------------------------------------------------


def _git_commit() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def run_child(args: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from virnucpro_tui.measure.bench_child import child_main

    result = workdir / "child.json"
    proc = mp.get_context("spawn").Process(target=child_main, args=(args, str(result)))
    proc.start()
    try:
        proc.join()
    finally:
        if proc.is_alive():  # interrupted: the child must not outlive its files
            proc.terminate()
            proc.join(30)
    data = json.loads(result.read_text()) if result.exists() else {}
    if proc.exitcode != 0:
        data["child_error"] = f"exit code {proc.exitcode}"
    return data


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder removed at exit, on error, on Ctrl-C and on SIGTERM."""
    work = Path(tempfile.mkdtemp(prefix="virnucpro-bench-"))

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield work
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)


def precisions_to_measure(arg: str | None, tiny: bool) -> list[str]:
    """``--precision`` as a list; by default auto, plus fp8 on a GPU that can run it."""
    from virnucpro_tui.models.settings import PRECISIONS

    if arg:
        chosen = [p.strip() for p in arg.split(",") if p.strip()]
        unknown = [p for p in chosen if p not in PRECISIONS]
        if unknown:
            from virnucpro_tui.errors import InputError

            raise InputError(f"--precision {unknown[0]}: expected one of {', '.join(PRECISIONS)}")
        return chosen
    if tiny:
        return ["auto"]
    from virnucpro_tui.models.precision import fp8_refusal, torchao_available
    from virnucpro_tui.pool.devices import device_capabilities

    devices = device_capabilities("auto")
    fp8 = torchao_available() and all(fp8_refusal(d) is None for d in devices)
    return ["auto", "fp8"] if fp8 else ["auto"]


def summarise(r: dict[str, Any], s: Shapes) -> dict[str, Any]:
    """Top-level figures of the default precision (``auto``), MFU, speed-ups."""
    stages = (r.get("stages") or {}).get("auto") or {}
    r.update(
        {k: v for k, v in stages.items() if k in ("esm_proteins_per_s", "dnabert_frames_per_s")}
    )
    pipe = (r.get("pipeline") or {}).get("auto") or {}
    r.update(pipe)
    command = pipe.get("command_warm") or {}
    for tag, suffix in (("standby", ""), ("no_standby", "_no_standby"), ("levers", "_levers")):
        r[f"command_first_shard_done_s_warm{suffix}"] = (command.get(tag) or {}).get(
            "first_shard_done_s"
        )
    r["command_first_shard_done_s_cold_levers"] = (command.get("levers_cold") or {}).get(
        "first_shard_done_s"
    )
    peak = r.get("peak_tflops")
    flops = esm_flops_per_protein(s, s.protein_len)
    if "esm_proteins_per_s" in r and peak:
        r["esm_mfu"] = flops * r["esm_proteins_per_s"] / (peak * 1e12)
        r["esm_speed_of_light_proteins_per_s"] = peak * 1e12 / flops
    base = r.get("baseline_frames_per_s")
    for p in (r.get("pipeline") or {}).values():
        if p.get("pipeline_frames_per_s") and base:
            p["speedup_vs_published"] = p["pipeline_frames_per_s"] / base
    if r.get("pipeline_frames_per_s") and base:
        r["speedup_vs_published"] = r["pipeline_frames_per_s"] / base
    for key in ("esm_proteins_per_s", "dnabert_frames_per_s", "pipeline_frames_per_s",
                "baseline_frames_per_s", "speedup_vs_published", "esm_mfu",
                "model_load_s_first", "model_load_s_warm"):  # fmt: skip
        r.setdefault(key, None)
    return r


def targets(s: Shapes) -> list[tuple[str, str, float | None]]:
    """(key, label, target); tiny shapes have no targets (those are for the real shapes on a GPU)."""
    rows: list[tuple[str, str, float | None]] = [
        ("esm_proteins_per_s", f"{s.esm_label} proteins/s ({s.protein_len} aa)", 650),
        ("dnabert_frames_per_s", f"{s.dna_label} frames/s (tokenized ahead)", 20000),
        ("pipeline_frames_per_s", f"whole pipeline frames/s {s.worker_label} (pool)", 620),
        ("baseline_frames_per_s", "published settings frames/s", None),
        ("speedup_vs_published", "speed-up vs published settings", 20),
        ("esm_mfu", f"{s.esm_label} MFU (vs measured matmul peak)", 0.78),
        ("first_shard_done_s_cold", "start to first shard, cold compile cache (s)", 15),
        ("first_shard_done_s_warm", "start to first shard, warm compile cache (s)", 6),
        ("command_first_shard_done_s_warm", "`run` launched to first shard, warm (s)", 6),
        ("command_first_shard_done_s_warm_no_standby", "the same without standbys (s)", None),
        ("command_first_shard_done_s_warm_levers", "the same, every start-up lever (s)", 6),
        ("command_first_shard_done_s_cold_levers", "the same, cold cache (s)", 15),
        ("model_load_s_warm", "model load, warm later job (s)", 0),
        ("prepare_chunks_per_s", "prepare, 500-bp chunks/s (1 core)", 50000),
        ("peak_tflops", "measured matmul peak TFLOP/s", None),
    ]
    return [(k, label, None if s.tiny else t) for k, label, t in rows]


def _shown(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(r: dict[str, Any], s: Shapes) -> str:
    head = "tiny shapes on the CPU: checks the benchmark, not the engine's speed" if s.tiny else ""
    lines = [head] if head else []
    rows = targets(s)
    width = max(len(label) for _, label, _ in rows)
    lines.append(f"{'measure':{width}} {'value':>14} {'target':>10}")
    for key, label, target in rows:
        lines.append(f"{label:{width}} {_shown(r.get(key)):>14} {_shown(target):>10}")
    for precision, st in (r.get("stages") or {}).items():
        if precision != "auto":
            lines.append(
                f"{precision}: {s.esm_label} {_shown(st.get('esm_proteins_per_s'))} proteins/s, "
                f"{s.dna_label} {_shown(st.get('dnabert_frames_per_s'))} frames/s"
            )
    for precision, p in (r.get("pipeline") or {}).items():
        if precision != "auto":
            lines.append(
                f"{precision}: pipeline {_shown(p.get('pipeline_frames_per_s'))} frames/s "
                f"({_shown(p.get('speedup_vs_published'))}x published)"
            )
    for precision, f in (r.get("fidelity") or {}).items():
        if isinstance(f, dict):
            lines.append(
                f"fidelity {precision}: ESM cos min {f['esm_cosine_min']:.6f}, DNABERT cos min "
                f"{f['dnabert_cosine_min']:.6f}, |dP(virus)| max {f['score_abs_diff_max']:.2e} "
                f"p99 {f['score_abs_diff_p99']:.2e}, label flips {f['label_flips']}"
            )
    sc = r.get("scaling")
    if sc:
        many = sc[f"{sc['gpus']}_gpu_job_frames_per_s"]
        lines.append(
            f"{sc['gpus']} GPUs vs 1: {_shown(many)} vs "
            f"{_shown(sc['1_gpu_job_frames_per_s'])} frames/s, job efficiency "
            f"{sc['job_efficiency']:.3f}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    s = TINY if args.tiny else Shapes()
    if getattr(args, "quick", False) and not args.tiny:
        s = Shapes(n_proteins=1024, n_dna=4096, n_fidelity=256, n_baseline=64,
                   pipeline_frames=4096, scaling_frames=8192)  # fmt: skip
    skip = {x for x in (args.skip or "").split(",") if x}
    precisions = precisions_to_measure(getattr(args, "precision", None), args.tiny)
    with scratch_dir() as work:
        r = measure(s, skip, precisions, work, args.tiny)
    summarise(r, s)
    text = json.dumps(r, indent=2, default=str)
    to_stdout = args.json is not None and str(args.json) == "-"
    print(table(r, s), file=sys.stderr if to_stdout else sys.stdout)
    if to_stdout:
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if "child_error" not in r else 1


ENV_PREFIX = "VIRNUCPRO_TUI_"


def measure(
    s: Shapes, skip: set[str], precisions: list[str], work: Path, tiny: bool
) -> dict[str, Any]:
    from virnucpro_tui.core.benchmark import bench_prepare

    started = time.time()
    r: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": _git_commit(),
        "tiny": tiny,
        "shapes": asdict(s),
        "precisions": precisions,
        "host": platform.node(),
        "cpu_cores": os.cpu_count(),
        # start times depend on it: without a bytecode cache every process compiles torch's
        # sources again (the GPU image sets PYTHONDONTWRITEBYTECODE; a pip install has one)
        "python_bytecode_cache": not sys.dont_write_bytecode,
        # levers set through the environment (VIRNUCPRO_TUI_ESM_ATTENTION, ..._PRECOMPILE, ...)
        "environment": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIX)},
    }
    if "prepare" not in skip:
        r["prepare_chunks_per_s"] = bench_prepare(n_records=2000 if tiny else 20_000).chunks_per_s
    child = {"shapes": asdict(s), "tiny": tiny, "workdir": str(work), "skip": sorted(skip),
             "precisions": precisions}  # fmt: skip
    r.update(run_child(child, work))
    files = r.get("files")
    if "pipeline" not in skip and files:
        devices = "cpu:1" if tiny else "0"
        r["pipeline"] = {}
        for precision in precisions:
            log(f"pipeline through the pool, {precision}")
            engine = {"precision": precision, "compile_cache": work / f"compile-{precision}"}
            warm_start = precision == precisions[0]  # the warm start of the default only
            r["pipeline"][precision] = pipeline(s, files, work, devices, engine, warm_start)
            _save_partial(r)
    gpus = r.get("gpus") or 0
    if "scaling" not in skip and files and gpus > 1:
        engine = {"precision": precisions[0], "compile_cache": work / f"compile-{precisions[0]}"}
        r["scaling"] = scaling(s, files, work, gpus, engine)
    r.pop("files", None)  # paths in a folder that is gone now
    r["bench_seconds"] = time.time() - started
    return r


def _save_partial(r: dict[str, Any]) -> None:
    if os.environ.get("VIRNUCPRO_BENCH_PARTIAL"):
        Path(os.environ["VIRNUCPRO_BENCH_PARTIAL"]).write_text(json.dumps(r, default=str))
