"""GPU check (issue 21): why a `run` whose worker started from a standby took longer to its first
shard than one without. The real command on real-shape models (random weights) and one compile
cache: a first start warms the cache, then starts alternate with standbys on and off. After each,
the cache's file count (a start that compiled adds files), the engine's warm-up events and the
worker log's first lines.

    python3 scripts/gpu_standby_check.py OUT_DIR [ROUNDS]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from virnucpro_tui.measure.bench import write_frames_fasta  # noqa: E402
from virnucpro_tui.measure.bench_child import TINY, Shapes, build_models  # noqa: E402
from virnucpro_tui.measure.command_start import Launch, command_first_shard  # noqa: E402
from virnucpro_tui.pool.event_sinks import read_events  # noqa: E402


def files_in(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def main() -> None:
    out = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        import torch

        gpu = torch.cuda.is_available()  # else tiny shapes on the CPU: checks this script
        shapes, device = (Shapes(), "0") if gpu else (TINY, "cpu:1")
        files = build_models(work / "models", shapes, torch.device("cuda" if gpu else "cpu"))
        del torch
        shard = work / "one_shard.fa"
        write_frames_fasta(shard, shapes.shard_size, seed=13)
        cache = work / "compile"
        engine = {"precision": "auto", "compile_cache": cache}
        order = [False] + [s for _ in range(rounds) for s in (True, False)]
        for i, standby in enumerate(order):
            label = f"{i}_{'standby' if standby else 'no_standby'}"
            run = work / f"run-{i}"
            r: dict[str, object] = dict(
                command_first_shard(
                    files, shard, run, engine, Launch(device, shapes.shard_size), standby
                )
            )
            r["cache_files_after"] = files_in(cache)
            r["model_load_events"] = [
                {k: e.get(k) for k in ("ts", "model", "phase", "seconds", "cached", "compile")}
                for e in read_events(run / "events.jsonl")
                if e["type"] == "model_load"
            ]
            log = run / "logs" / "worker-0.log"
            r["worker_log_head"] = log.read_text().splitlines()[:6] if log.exists() else []
            results[label] = r
            print(label, {k: r[k] for k in ("first_shard_done_s", "cache_files_after")}, flush=True)
            (out / "standby-check.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
