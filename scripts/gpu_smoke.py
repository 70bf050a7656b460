"""A whole `virnucpro-tui run` on a GPU machine, checked from its files (one device call).

Runs the two sample inputs with the demo models on every visible GPU (half precision, compiled
fast paths, eager loading), with --save-features, then checks what the product promises:
workers pinned to GPUs by UUID, the warm-up as its own model_load phase, stage seconds that add
up to each shard's seconds, the saved features reproducing prediction_results.txt, and no
Python warning in the log. Prints one JSON object (and writes it to --json).

    PYTHONPATH=. python3 scripts/gpu_smoke.py --out /tmp/smoke --json $OUT/smoke.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUTS = [ROOT / "sample_data" / "sample_contigs.fa", ROOT / "sample_data" / "sample_reads.fa.gz"]


def run(out: Path) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "virnucpro_tui", "run", *map(str, INPUTS), "--demo", "--no-ui"]
    cmd += ["--length", "500", "--out", str(out), "--save-features", "--restart"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return done.returncode, time.perf_counter() - start, done.stderr


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def features_reproduce_scores(job_dir: Path, classifier: Path) -> bool:
    import torch

    from virnucpro_tui.core.outputs import PREDICTION_HEADER, predictions_from_arrays
    from virnucpro_tui.models.classifier import load_classifier, predict_proba

    saved = torch.load(job_dir / "prediction_features.pt", weights_only=True)
    probs = predict_proba(load_classifier(classifier), saved["data"]).numpy()
    rows = "".join(p.row() for p in predictions_from_arrays(saved["ids"], probs))
    return PREDICTION_HEADER + rows == (job_dir / "prediction_results.txt").read_text()


def check(out: Path, code: int, seconds: float, stderr: str) -> dict:
    from virnucpro_tui.models.demo import ensure_demo_models

    ev = events(out)
    states = [e for e in ev if e["type"] == "worker_state" and e.get("uuid")]
    phases = [(e["worker"], e["model"], e["phase"]) for e in ev if e["type"] == "model_load"]
    shards = [e for e in ev if e["type"] == "shard_done"]
    sums = [sum(e["stage_seconds"].values()) / e["seconds"] for e in shards if e["seconds"]]
    classifier = ensure_demo_models().classifier_500
    jobs = [out / "sample_contigs", out / "sample_reads"]
    first = next(e["ts"] for e in ev if e["type"] == "run_started")
    first_shard = min(e["ts"] for e in shards) if shards else None
    return {
        "exit_code": code,
        "seconds": round(seconds, 1),
        "start_to_first_shard_s": round(first_shard - first, 1) if first_shard else None,
        "devices": next(e["devices"] for e in ev if e["type"] == "run_started"),
        "worker_uuids": sorted({e["uuid"] for e in states}),
        "model_load_phases": sorted({p for _, _, p in phases}),
        "models_warmed": sorted({m for _, m, p in phases if p == "warmup_done"}),
        "shards": len(shards),
        "stage_share_min_max": [round(min(sums), 4), round(max(sums), 4)] if sums else None,
        "dtypes": sorted(
            {e.get("dtype") for e in ev if e["type"] == "model_load" and e.get("dtype")}
        ),
        "features_reproduce_scores": [features_reproduce_scores(j, classifier) for j in jobs],
        "duplicates": [e.get("duplicate_frames") for e in ev if e["type"] == "job_done"],
        "warnings_in_stderr": [line for line in stderr.splitlines() if "Warning" in line][:5],
        "last_event": ev[-1]["type"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/virnucpro-gpu-smoke"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    code, seconds, stderr = run(args.out)
    if code != 0:
        print(stderr[-4000:], file=sys.stderr)
    result = check(args.out, code, seconds, stderr)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if code == 0 and all(result["features_reproduce_scores"]) else 1


if __name__ == "__main__":
    sys.exit(main())
