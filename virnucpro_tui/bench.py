"""``virnucpro-tui bench``: the engine and the pipeline on random weights of the real shapes.

Sections (targets in docs/benchmarks.md): the device's bf16 matmul peak; preparation on one CPU core;
ESM-2 and DNABERT-S alone through the engine the workers run; half-precision fidelity against
fp32; the published tool's settings on a subsample; and the whole pipeline through the real
pool and run directory, with the model-load time of a first job against a warm later one.

GPU work runs in a child process: the bench's main process, like the orchestrator, never
initialises CUDA. ``--tiny`` runs the same code with tiny shapes on the CPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

AA = "ACDEFGHIKLMNPQRSTVWY"
SENSE = ["GCT", "AAA", "CTG", "ATG", "GGC", "TCA", "CCG", "ACG", "GAT", "CGT", "TTC", "CAG"]


@dataclass
class Shapes:
    esm_layers: int = 36
    esm_dim: int = 2560
    esm_heads: int = 40
    dna_layers: int = 12
    dna_dim: int = 768
    dna_heads: int = 12
    dna_ffn: int = 3072
    dna_vocab: int = 4096
    classifier_hidden: int = 512
    protein_len: int = 166
    n_proteins: int = 3432  # 8 batches of 429 (the H200 token budget / 168)
    n_dna: int = 8192
    n_fidelity: int = 256
    n_baseline: int = 256
    pipeline_warmup_frames: int = 512
    pipeline_frames: int = 12288
    shard_size: int = 2048


TINY = Shapes(
    esm_layers=2,
    esm_dim=64,
    esm_heads=4,
    dna_layers=2,
    dna_dim=64,
    dna_heads=4,
    dna_ffn=128,
    dna_vocab=512,
    classifier_hidden=32,
    protein_len=166,
    n_proteins=256,
    n_dna=256,
    n_fidelity=32,
    n_baseline=32,
    pipeline_warmup_frames=32,
    pipeline_frames=256,
    shard_size=64,
)


def esm_flops_per_protein(s: Shapes, length: int) -> float:
    """Matmul FLOPs of one protein of ``length`` residues (+BOS/EOS) through ESM-2."""
    t = length + 2
    per_token = s.esm_layers * (
        2 * (4 * s.esm_dim**2 + 2 * s.esm_dim * 4 * s.esm_dim) + 4 * t * s.esm_dim
    )
    return per_token * t


def random_proteins(n: int, length: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(AA, k=length)) for _ in range(n)]


def random_frames_dna(n: int, length: int = 499, seed: int = 1) -> list[str]:
    """Nucleotide slices like a 500-bp chunk's frame (coding-like DNA)."""
    rng = random.Random(seed)
    return ["".join(rng.choices(SENSE, k=length // 3 + 1))[:length] for _ in range(n)]


def log(message: str) -> None:
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, device: Any) -> tuple[float, Any]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


# --- models of the real shapes, written in the real formats ------------------------------------


def build_models(root: Path, s: Shapes, device: Any) -> dict[str, str]:
    """Random weights, real architectures and file formats (like the demo models, but full size)."""
    import esm
    import torch
    from safetensors.torch import save_file

    from virnucpro_tui.models.classifier import MLPClassifier
    from virnucpro_tui.models.demo import dnabert_config_json, train_dna_tokenizer
    from virnucpro_tui.models.dnabert import DnabertConfig, DnabertModel
    from virnucpro_tui.models.esm import save_fair_esm_checkpoint

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    with torch.device(device):
        esm_model = esm.model.esm2.ESM2(
            s.esm_layers, s.esm_dim, s.esm_heads, alphabet, token_dropout=True
        )
    esm_path = save_fair_esm_checkpoint(
        esm_model,
        root / f"esm2_t{s.esm_layers}_bench_UR50D.pt",
        dtype=torch.float16,
        regression=False,
    )
    del esm_model
    tok = train_dna_tokenizer(random.Random(0), s.dna_vocab)
    cfg = DnabertConfig(
        hidden_size=s.dna_dim,
        num_hidden_layers=s.dna_layers,
        num_attention_heads=s.dna_heads,
        intermediate_size=s.dna_ffn,
        vocab_size=tok.get_vocab_size(),
    )
    with torch.device(device):
        dna_model = DnabertModel(cfg)
    dna_dir = root / "DNABERT-S-bench"
    dna_dir.mkdir(exist_ok=True)
    save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in dna_model.state_dict().items()},
        str(dna_dir / "model.safetensors"),
    )
    tok.save(str(dna_dir / "tokenizer.json"))
    (dna_dir / "config.json").write_text(json.dumps(dnabert_config_json(cfg), indent=2))
    clf = MLPClassifier(s.dna_dim + s.esm_dim, s.classifier_hidden, 2).eval()
    clf_path = root / "500_model.safetensors"
    save_file(
        {k: v.contiguous() for k, v in clf.state_dict().items()},
        str(clf_path),
        metadata={"chunk_length": "500"},
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"esm": str(esm_path), "dnabert": str(dna_dir), "classifier": str(clf_path)}


# --- the child process: everything that touches the GPU -----------------------------------------


def peak_matmul(device: Any, tiny: bool) -> float:
    import torch

    n, dtype = (1024, torch.float32) if tiny else (8192, torch.bfloat16)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 3 if tiny else 20
    seconds, _ = timed(lambda: [a @ b for _ in range(reps)], device)
    return 2 * n**3 * reps / seconds / 1e12


def stage_benchmarks(
    s: Shapes, files: dict[str, str], device: Any, settings: Any
) -> dict[str, Any]:
    """ESM-2 and DNABERT-S alone, through the same Engine code the workers run."""
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import ModelFiles

    engine = Engine(
        ModelFiles(Path(files["esm"]), Path(files["dnabert"]), Path(files["classifier"])),
        device,
        settings,
    )
    load_s, _ = timed(engine.load, device)
    out: dict[str, Any] = {
        "engine_load_s": round(load_s, 2),
        "model_loads": {r.model: round(r.seconds, 2) for r in engine.loads},
    }
    proteins = random_proteins(s.n_proteins, s.protein_len)
    log(f"engine loaded in {load_s:.1f} s; ESM-2 stage on {len(proteins)} proteins")
    engine.embed_proteins(
        proteins[: 2 * engine._budget("esm") // (s.protein_len + 2) + 7]
    )  # any compiling now
    esm_s, _ = timed(lambda: engine.embed_proteins(proteins), device)
    out["esm_proteins_per_s"] = s.n_proteins / esm_s
    out["esm_tflops"] = esm_flops_per_protein(s, s.protein_len) * s.n_proteins / esm_s / 1e12
    if "_stack" in vars(engine.esm.encoder):  # the compiled method; time the eager one too
        compiled = engine.esm.encoder.__dict__.pop("_stack")
        eager_s, _ = timed(lambda: engine.embed_proteins(proteins), device)
        engine.esm.encoder._stack = compiled
        out["esm_proteins_per_s_eager"] = s.n_proteins / eager_s
    dna = random_frames_dna(s.n_dna)
    tokens = [len(t) for t in engine.dnabert.tokenize(dna[:256])]
    out["dna_tokens_mean"] = sum(tokens) / len(tokens)
    log(f"ESM-2 {s.n_proteins / esm_s:.1f} proteins/s; DNABERT-S stage on {len(dna)} frames")
    engine.embed_dna(dna[: 2 * engine._budget("dnabert") // 100 + 7])
    dna_s, _ = timed(lambda: engine.embed_dna(dna), device)
    out["dnabert_frames_per_s"] = s.n_dna / dna_s
    out["esm_budget_tokens"] = engine._budget("esm")
    if device.type == "cuda":
        import torch

        out["stage_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    out["dnabert_budget_tokens"] = engine._budget("dnabert")
    return out


def fidelity(s: Shapes, files: dict[str, str], device: Any) -> dict[str, Any]:
    """Half precision (fast path) against fp32 (reference modules), on the same weights."""
    import copy

    import torch

    from virnucpro_tui.models.classifier import load_classifier, predict_proba
    from virnucpro_tui.models.dnabert import load_dnabert
    from virnucpro_tui.models.engine import AUTO_GPU_PRECISION
    from virnucpro_tui.models.esm import load_esm
    from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm

    torch.backends.cuda.matmul.allow_tf32 = False
    proteins = random_proteins(s.n_fidelity, s.protein_len, seed=7)
    dna = random_frames_dna(s.n_fidelity, seed=8)
    clf = load_classifier(files["classifier"])
    clf.model.to(device)
    esm_ref = load_esm(files["esm"]).to(device, torch.float32)
    dna_ref = load_dnabert(files["dnabert"]).to(device, torch.float32)
    ref_p, ref_d = esm_ref.embed(proteins), _embed_dna(dna_ref, dna)
    ref_scores = predict_proba(clf, torch.cat([ref_d, ref_p], 1).to(device))
    out: dict[str, Any] = {}
    fast32 = copy.deepcopy(esm_ref)
    accelerate_esm(fast32, compile_=False)
    out["fast_esm_fp32_max_abs_diff"] = float((fast32.embed(proteins) - ref_p).abs().max())
    del fast32
    embeddings: dict[str, tuple[Any, Any]] = {}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        esm_h, dna_h = (
            copy.deepcopy(esm_ref).to(device, dtype),
            copy.deepcopy(dna_ref).to(device, dtype),
        )
        if device.type == "cuda":
            accelerate_esm(esm_h, compile_=False)
            accelerate_dnabert(dna_h, compile_=False)
        p, d = esm_h.embed(proteins), _embed_dna(dna_h, dna)
        embeddings[name] = (p, d)
        out[name] = _agreement(p, d, ref_p, ref_d, clf, ref_scores, device)
        del esm_h, dna_h
    esm_auto, dna_auto = AUTO_GPU_PRECISION["esm"], AUTO_GPU_PRECISION["dnabert"]
    out[f"auto (ESM-2 {esm_auto}, DNABERT-S {dna_auto})"] = _agreement(
        embeddings[esm_auto][0], embeddings[dna_auto][1], ref_p, ref_d, clf, ref_scores, device
    )
    return out


def _agreement(
    p: Any, d: Any, ref_p: Any, ref_d: Any, clf: Any, ref_scores: Any, device: Any
) -> dict[str, float]:
    import torch

    from virnucpro_tui.models.classifier import predict_proba

    scores = predict_proba(clf, torch.cat([d, p], 1).to(device))
    return {
        "esm_cosine_min": _cos_min(p, ref_p),
        "dnabert_cosine_min": _cos_min(d, ref_d),
        "score_abs_diff_max": float((scores - ref_scores).abs().max()),
    }


def _embed_dna(bundle: Any, seqs: list[str]) -> Any:
    ids, mask = bundle.collate(bundle.tokenize(seqs))
    return bundle.forward_pooled(ids, mask)


def _cos_min(a: Any, b: Any) -> float:
    import torch

    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1).min())


def published_baseline(s: Shapes, files: dict[str, str], device: Any) -> dict[str, Any]:
    """The published tool's settings on a subsample: fp32, ESM batches of 2048 tokens, DNABERT-S
    one sequence at a time, both models loaded again for every 10,000 sequences."""
    import torch

    from virnucpro_tui.models.classifier import load_classifier, predict_proba
    from virnucpro_tui.models.dnabert import embed_dna_published, load_dnabert
    from virnucpro_tui.models.esm import embed_proteins_published, load_fair_esm_reference

    torch.backends.cuda.matmul.allow_tf32 = False
    n = s.n_baseline
    proteins, dna = random_proteins(n, s.protein_len, seed=3), random_frames_dna(n, seed=4)
    load_esm_s, (esm2, alphabet) = timed(lambda: load_fair_esm_reference(files["esm"]), device)
    esm2 = esm2.to(device)
    load_dna_s, dna_bundle = timed(
        lambda: load_dnabert(files["dnabert"]).to(device, torch.float32), device
    )
    dna_s, d = timed(lambda: embed_dna_published(dna_bundle, dna), device)
    esm_s, p = timed(
        lambda: embed_proteins_published(esm2, alphabet, proteins, toks_per_batch=2048), device
    )
    clf = load_classifier(files["classifier"])
    clf.model.to(device)
    mlp_s, _ = timed(lambda: predict_proba(clf, torch.cat([d, p], 1).to(device)), device)
    reload_s = load_esm_s + load_dna_s
    per_frame = (dna_s + esm_s + mlp_s) / n + reload_s / 10_000
    return {
        "baseline_frames_per_s": 1 / per_frame,
        "baseline_esm_proteins_per_s": n / esm_s,
        "baseline_dnabert_frames_per_s": n / dna_s,
        "baseline_model_load_s": reload_s,
        "baseline_n": n,
    }


def child_main(args: dict[str, Any], result_path: str) -> None:
    import torch

    from virnucpro_tui.models.settings import EngineSettings

    s = Shapes(**args["shapes"])
    device = torch.device("cuda" if torch.cuda.is_available() and not args["tiny"] else "cpu")
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    skip = set(args["skip"])

    def save() -> None:
        Path(result_path).write_text(json.dumps(out, default=str))
        if os.environ.get("VIRNUCPRO_BENCH_PARTIAL"):
            Path(os.environ["VIRNUCPRO_BENCH_PARTIAL"]).write_text(json.dumps(out, default=str))

    out["peak_tflops"] = peak_matmul(device, args["tiny"])
    log(f"{out['device']}: matmul peak {out['peak_tflops']:.0f} TFLOP/s; building models")
    out["files"] = build_models(Path(args["workdir"]) / "models", s, device)
    log("models written")
    save()
    settings = EngineSettings(**args["engine"])
    if "stages" not in skip:
        out.update(stage_benchmarks(s, out["files"], device, settings))
        save()
    if "fidelity" not in skip:
        log("fidelity: half precision against fp32")
        out["fidelity"] = fidelity(s, out["files"], device)
        save()
    if "baseline" not in skip:
        log("published settings on a subsample")
        out.update(published_baseline(s, out["files"], device))
        save()
    log("child done")


# --- the pipeline through the real pool (main process) -------------------------------------------


def write_frames_fasta(path: Path, n_frames: int, seed: int) -> None:
    """500-bp ORF-rich sequences; each yields about one kept frame per chunk."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n_frames):
            fh.write(f">bench_{seed}_{i}\n{''.join(rng.choices(SENSE, k=167))[:500]}\n")


def pipeline(
    s: Shapes, files: dict[str, str], workdir: Path, devices: str, engine: dict[str, Any]
) -> dict[str, Any]:
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles
    from virnucpro_tui.pool.events import read_events
    from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig

    warm, main = workdir / "warmup.fa", workdir / "measured.fa"
    write_frames_fasta(warm, s.pipeline_warmup_frames, seed=11)
    write_frames_fasta(main, s.pipeline_frames, seed=12)
    out_dir = workdir / "pipeline_run"
    cfg = RunConfig(
        inputs=[warm, main],
        out=out_dir,
        devices=devices,
        restart=True,
        models=ModelFiles(Path(files["esm"]), Path(files["dnabert"]), Path(files["classifier"])),
        engine=EngineSettings(chunk_length=500, force_model_length=True, **engine),
        shard_size=s.shard_size,
    )
    code = Orchestrator(cfg, []).execute()
    return pipeline_metrics(read_events(out_dir / "events.jsonl"), code)


def pipeline_metrics(
    events: list[dict[str, Any]], code: int, measured: str = "measured"
) -> dict[str, Any]:
    """Steady-state frames/s of the measured job: per worker, the frames of its shards after its
    first one over the time between its first and last completion; summed over workers."""
    started = {e["job"]: e["ts"] for e in events if e["type"] == "job_started"}
    done = {e["job"]: e for e in events if e["type"] == "job_done"}
    shards = [e for e in events if e["type"] == "shard_done" and e["job"] == measured]
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
    }


def _first_work(events: list[dict[str, Any]], job: str, default: float) -> float:
    """When a worker started on the job's first shard (its wall time then includes assembly)."""
    return min(
        (e["ts"] for e in events if e["type"] == "progress" and e["job"] == job), default=default
    )


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
    result = workdir / "child.json"
    proc = mp.get_context("spawn").Process(target=child_main, args=(args, str(result)))
    proc.start()
    proc.join()
    data = json.loads(result.read_text()) if result.exists() else {}
    if proc.exitcode != 0:
        data["child_error"] = f"exit code {proc.exitcode}"
    return data


def summarise(r: dict[str, Any], s: Shapes) -> dict[str, Any]:
    peak = r.get("peak_tflops")
    if "esm_proteins_per_s" in r and peak:
        r["esm_mfu"] = (
            esm_flops_per_protein(s, s.protein_len) * r["esm_proteins_per_s"] / (peak * 1e12)
        )
        r["esm_speed_of_light_proteins_per_s"] = (
            peak * 1e12 / esm_flops_per_protein(s, s.protein_len)
        )
    if r.get("pipeline_frames_per_s") and r.get("baseline_frames_per_s"):
        r["speedup_vs_published"] = r["pipeline_frames_per_s"] / r["baseline_frames_per_s"]
    for key in (
        "esm_proteins_per_s",
        "dnabert_frames_per_s",
        "pipeline_frames_per_s",
        "baseline_frames_per_s",
        "speedup_vs_published",
        "esm_mfu",
        "model_load_s_first",
        "model_load_s_warm",
    ):
        r.setdefault(key, None)
    return r


TARGETS = [
    ("esm_proteins_per_s", "ESM-2 3B proteins/s (166 aa)", 620),
    ("dnabert_frames_per_s", "DNABERT-S frames/s", 25000),
    ("pipeline_frames_per_s", "whole pipeline frames/s (pool)", 550),
    ("baseline_frames_per_s", "published settings frames/s", None),
    ("speedup_vs_published", "speed-up vs published settings", 20),
    ("esm_mfu", "ESM-2 MFU (vs measured peak)", 0.75),
    ("model_load_s_first", "model load + compile, first job (s)", None),
    ("model_load_s_warm", "model load, warm later job (s)", 0),
    ("prepare_chunks_per_s", "prepare, 500-bp chunks/s (1 core)", 50000),
    ("peak_tflops", "measured matmul peak TFLOP/s", None),
]


def table(r: dict[str, Any]) -> str:
    lines = [f"{'measure':40} {'value':>14} {'target':>10}"]
    for key, label, target in TARGETS:
        v = r.get(key)
        shown = (
            "-"
            if v is None
            else (f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.1f}")
        )
        lines.append(f"{label:40} {shown:>14} {'' if target is None else target:>10}")
    for prec, f in (r.get("fidelity") or {}).items():
        if not isinstance(f, dict):
            lines.append(f"fidelity {prec}: {f:.2e}")
            continue
        lines.append(
            f"fidelity {prec}: ESM cos min {f['esm_cosine_min']:.6f}, DNABERT cos min "
            f"{f['dnabert_cosine_min']:.6f}, |Δscore| max {f['score_abs_diff_max']:.2e}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from virnucpro_tui.core.benchmark import bench_prepare

    s = TINY if args.tiny else Shapes()
    if getattr(args, "quick", False) and not args.tiny:
        s = Shapes(n_proteins=1024, n_dna=4096, n_fidelity=64, n_baseline=64, pipeline_frames=4096)
    skip = {x for x in (args.skip or "").split(",") if x}
    engine = {"precision": getattr(args, "precision", "auto") or "auto"}
    work = Path(tempfile.mkdtemp(prefix="virnucpro-bench-"))
    started = time.time()
    r: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": _git_commit(),
        "tiny": args.tiny,
        "shapes": asdict(s),
        "host": platform.node(),
        "cpu_cores": os.cpu_count(),
    }
    if "prepare" not in skip:
        p = bench_prepare(n_records=2000 if args.tiny else 20_000)
        r["prepare_chunks_per_s"] = p.chunks_per_s
    child_args = {
        "shapes": asdict(s),
        "tiny": args.tiny,
        "workdir": str(work),
        "skip": sorted(skip),
        "engine": engine,
    }
    r.update(run_child(child_args, work))
    if "pipeline" not in skip and "files" in r:
        log("pipeline through the pool")
        devices = "cpu:1" if args.tiny else "auto"
        r.update(pipeline(s, r["files"], work, devices, engine))
    r["bench_seconds"] = time.time() - started
    summarise(r, s)
    print(table(r))
    text = json.dumps(r, indent=2, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0 if "child_error" not in r else 1
