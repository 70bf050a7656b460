"""Start-up with and without standbys (docs/architecture.md#worker-interpreters-start-early):
``virnucpro-tui run`` on the demo models, timed from the command's start to the worker's first
model load and to the first shard written, alternating ``VIRNUCPRO_TUI_STANDBY=1`` and ``=0``.

    python3 scripts/standby_startup.py OUT_JSON [REPEATS] [-- extra run arguments]

On a GPU machine the demo models run on the GPU (``--devices auto``), so the figures are the
process, import and CUDA start-up the standbys overlap, not the real models' load.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUT = ROOT / "sample_data" / "sample_contigs.fa"


def one_run(standby: str, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        env = {**os.environ, "VIRNUCPRO_TUI_STANDBY": standby}
        command = [sys.executable, "-m", "virnucpro_tui", "run", str(INPUT), "--out", str(out)]
        start = time.time()
        done = subprocess.run(
            [*command, "--demo", "--no-ui", *extra], env=env, capture_output=True, text=True
        )
        wall = time.time() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    first = {}
    for e in events:
        first.setdefault((e["type"], e.get("phase")), e["ts"])
    return {
        "run_started_s": round(first[("run_started", None)] - start, 3),
        "model_load_s": round(first[("model_load", "start")] - start, 3),
        "first_shard_done_s": round(first[("shard_done", None)] - start, 3),
        "wall_s": round(wall, 3),
    }


def main() -> None:
    out = Path(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "--" else 5
    extra = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    runs: dict[str, list[dict[str, float]]] = {"1": [], "0": []}
    one_run("1", extra)  # page cache and bytecode warm for both
    for _ in range(repeats):
        for standby in ("1", "0"):
            runs[standby].append(one_run(standby, extra))
            print(standby, runs[standby][-1], flush=True)
    summary = {
        f"standby_{k}": {m: statistics.median(r[m] for r in v) for m in v[0]}
        for k, v in runs.items()
    }
    result = {"repeats": repeats, "extra": extra, "median": summary, "runs": runs}
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
