"""The GPU side of ``bench`` (a spawned child: the bench's own process never initialises CUDA).

Sections: the matmul peak; models of the real shapes written in the real formats; ESM-2 and
DNABERT-S through the engine the workers run, per precision; fidelity of every precision
against fp32 through the same engine; the published tool's settings on a subsample.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- the workload: model shapes and synthetic inputs (the bench's main process reads them too)

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
    n_fidelity: int = 4096
    n_baseline: int = 256
    pipeline_warmup_frames: int = 512
    pipeline_frames: int = 12288
    shard_size: int = 2048
    scaling_frames: int = 16384  # one GPU against all: enough shards for every GPU
    scaling_shard_size: int = 1024
    tiny: bool = False

    @property
    def esm_label(self) -> str:
        if self.tiny:
            return f"tiny ESM-2 ({self.esm_layers} layers, d {self.esm_dim})"
        return "ESM-2 3B" if (self.esm_layers, self.esm_dim) == (36, 2560) else "ESM-2"

    @property
    def dna_label(self) -> str:
        if self.tiny:
            return f"tiny DNABERT-S ({self.dna_layers} layers, d {self.dna_dim})"
        return "DNABERT-S"

    @property
    def worker_label(self) -> str:
        """What the pipeline figure is per: ``--tiny`` runs one CPU worker (``cpu:1``)."""
        return "with one CPU worker" if self.tiny else "per GPU"


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
    tiny=True,
)


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


def peak_matmul(device: Any, tiny: bool) -> float:
    """TFLOP/s of a large matrix product: bf16 8192^3 on a GPU; fp32 2048^3 on the CPU (best of
    five, so that a busy shared CPU does not give a peak below what the model reaches)."""
    import torch

    n, dtype, reps = (2048, torch.float32, 5) if tiny else (8192, torch.bfloat16, 20)
    a = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ a
    if tiny:
        return max(2 * n**3 / timed(lambda: a @ a, device)[0] for _ in range(reps)) / 1e12
    seconds, _ = timed(lambda: [a @ a for _ in range(reps)], device)
    return 2 * n**3 * reps / seconds / 1e12


def _files(paths: dict[str, str]) -> Any:
    from virnucpro_tui.models.settings import ModelFiles

    return ModelFiles(Path(paths["esm"]), Path(paths["dnabert"]), Path(paths["classifier"]))


def _settings(precision: str, cache: Path, **extra: Any) -> Any:
    from virnucpro_tui.models.settings import EngineSettings

    # compiled before it runs: these are the engine's rates, not those of the models running
    # uncompiled beside their compilation (the pipeline's start-up rows time that path)
    return EngineSettings(
        precision=precision,
        force_model_length=True,
        compile_cache=cache,
        compile_beside=False,
        **extra,
    )


def stage_benchmarks(
    s: Shapes, files: dict[str, str], device: Any, precision: str, cache: Path
) -> dict[str, Any]:
    """ESM-2 and DNABERT-S alone, through the Engine code the workers run: tokenization apart
    (a worker tokenizes the next shard while the GPU computes), after a warm pass."""
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.reports import EngineReport, WarmupDone

    warmups: list[WarmupDone] = []

    def keep_warmups(report: EngineReport) -> None:
        if isinstance(report, WarmupDone):
            warmups.append(report)

    engine = Engine(_files(files), device, _settings(precision, cache), report=keep_warmups)
    load_s, _ = timed(engine.load, device)
    out: dict[str, Any] = {
        "engine_load_s": round(load_s, 2),
        "model_loads": {r.model: round(r.seconds, 2) for r in engine.loads},
        "warmup_s": {w.model: w.seconds for w in warmups},
    }
    proteins = random_proteins(s.n_proteins, s.protein_len)
    dna = random_frames_dna(s.n_dna)
    log(f"{precision}: engine loaded in {load_s:.1f} s; ESM-2 on {len(proteins)} proteins")
    p_tokens = engine.esm.tokenize(proteins)
    out["esm_proteins_per_s"] = _best_rate(
        len(proteins), lambda: engine.embed("esm", [], tokens=p_tokens), device
    )
    tok_s, d_tokens = timed(lambda: engine.dnabert.tokenize(dna), device)
    out["dna_tokenize_frames_per_s"] = len(dna) / tok_s
    out["dna_tokens_mean"] = sum(len(t) for t in d_tokens) / len(d_tokens)
    out["dnabert_frames_per_s"] = _best_rate(
        len(dna), lambda: engine.embed("dnabert", [], tokens=d_tokens), device
    )
    out["esm_budget_tokens"] = engine._budget("esm")
    out["dnabert_budget_tokens"] = engine._budget("dnabert")
    if device.type == "cuda":
        import torch

        out["stage_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        if precision == "auto":  # the other DNABERT-S attention, measured the same way
            # the key of earlier bench JSON: FlexAttention is now the default, so the same figure
            out["dnabert_flex_frames_per_s"] = out["dnabert_frames_per_s"]
            out["dnabert_bias_frames_per_s"] = _dnabert_bias_rate(files, device, cache, d_tokens)
    log(f"{precision}: ESM-2 {out['esm_proteins_per_s']:.1f}/s, DNABERT-S "
        f"{out['dnabert_frames_per_s']:.0f}/s")  # fmt: skip
    return out


def _dnabert_bias_rate(files: dict[str, str], device: Any, cache: Path, tokens: Any) -> float:
    """DNABERT-S with the reference's bias tensor (the default before FlexAttention)."""
    from virnucpro_tui.models.engine import Engine

    engine = Engine(_files(files), device, _settings("auto", cache, dnabert_attention="bias"))
    engine.dnabert = engine._load(
        "dnabert", lambda: _read_dnabert(files), engine_dtype_for(engine, "dnabert")
    )
    return _best_rate(len(tokens), lambda: engine.embed("dnabert", [], tokens=tokens), device)


def _read_dnabert(files: dict[str, str]) -> tuple[Any, float]:
    from virnucpro_tui.models.dnabert import load_dnabert

    start = time.perf_counter()
    return load_dnabert(files["dnabert"]), time.perf_counter() - start


def engine_dtype_for(engine: Any, model: str) -> Any:
    from virnucpro_tui.models.engine import engine_dtype

    return engine_dtype(engine.settings, engine.device, model)


def _best_rate(n: int, fn: Any, device: Any, repeats: int = 2) -> float:
    """Items/s: one warm pass (compilation of any new shape), then the best of ``repeats``."""
    fn()
    return n / min(timed(fn, device)[0] for _ in range(repeats))


def fidelity(
    s: Shapes, files: dict[str, str], device: Any, precisions: list[str], cache: Path
) -> dict[str, Any]:
    """Every precision through the engine (the compiled fast paths workers run) against the
    fp32 reference modules (TF32 off) on the same frames: per model the minimum cosine of the
    pooled embeddings; of P(virus) the largest and 99th-percentile difference and label flips."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    proteins = random_proteins(s.n_fidelity, s.protein_len, seed=7)
    dna = random_frames_dna(s.n_fidelity, seed=8)
    ref = _embed_all(files, device, "fp32", cache, proteins, dna)
    log(f"fidelity: fp32 reference on {s.n_fidelity} frames in {ref['seconds']:.0f} s")
    out: dict[str, Any] = {"frames": s.n_fidelity, "reference_seconds": ref["seconds"]}
    for precision in precisions:
        got = _embed_all(files, device, precision, cache, proteins, dna)
        out[precision] = _agreement(got, ref)
        log(f"fidelity {precision}: {out[precision]}")
    return out


def _embed_all(
    files: dict[str, str],
    device: Any,
    precision: str,
    cache: Path,
    proteins: list[str],
    dna: list[str],
) -> dict[str, Any]:
    import torch

    from virnucpro_tui.models.classifier import predict_proba
    from virnucpro_tui.models.engine import Engine

    engine = Engine(_files(files), device, _settings(precision, cache))
    engine.load()
    start = time.perf_counter()
    d, p = engine.embed("dnabert", dna), engine.embed("esm", proteins)
    scores = predict_proba(engine.classifier, torch.cat([d, p], 1).to(device)).float().cpu()
    seconds = time.perf_counter() - start
    del engine
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"dna": d, "esm": p, "virus": scores[:, 1], "seconds": seconds}


def _agreement(got: dict[str, Any], ref: dict[str, Any]) -> dict[str, float]:
    import torch

    cos = torch.nn.functional.cosine_similarity
    diff = (got["virus"] - ref["virus"]).abs().double()
    flips = ((got["virus"] > 0.5) != (ref["virus"] > 0.5)).sum()
    return {
        "esm_cosine_min": float(cos(got["esm"], ref["esm"], dim=1).min()),
        "dnabert_cosine_min": float(cos(got["dna"], ref["dna"], dim=1).min()),
        "score_abs_diff_max": float(diff.max()),
        "score_abs_diff_p99": float(torch.quantile(diff, 0.99)),
        "label_flips": int(flips),
    }


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

    s = Shapes(**args["shapes"])
    device = torch.device("cuda" if torch.cuda.is_available() and not args["tiny"] else "cpu")
    work = Path(args["workdir"])
    cache = work / "compile-stages"
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "gpus": torch.cuda.device_count() if device.type == "cuda" else 0,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    skip = set(args["skip"])

    def save() -> None:
        Path(result_path).write_text(json.dumps(out, default=str))
        if os.environ.get("VIRNUCPRO_BENCH_PARTIAL"):
            Path(os.environ["VIRNUCPRO_BENCH_PARTIAL"]).write_text(json.dumps(out, default=str))

    out["peak_tflops"] = peak_matmul(device, args["tiny"])
    log(f"{out['device']}: matmul peak {out['peak_tflops']:.3g} TFLOP/s; building models")
    out["files"] = build_models(work / "models", s, device)
    save()
    precisions = args["precisions"]
    if "stages" not in skip:
        out["stages"] = {}
        for precision in precisions:
            out["stages"][precision] = stage_benchmarks(s, out["files"], device, precision, cache)
            save()
    if "fidelity" not in skip:
        # auto is fp32 on the CPU: nothing to compare
        auto_differs = device.type == "cuda"
        measured = [
            p
            for p in ("fp16", "bf16", *precisions)
            if p != "fp32" and (p != "auto" or auto_differs)
        ]
        out["fidelity"] = fidelity(s, out["files"], device, list(dict.fromkeys(measured)), cache)
        save()
    if "baseline" not in skip:
        log("published settings on a subsample")
        out.update(published_baseline(s, out["files"], device))
        save()
    log("child done")


def _cpu_name() -> str:
    return platform.processor() or platform.machine() or "cpu"
