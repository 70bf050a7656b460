"""The report's cost on a big run (docs/benchmarks.md#the-report): a synthetic finished run
directory of N sequences (one chunk, one scored frame each: N frames; a two-worker event log of
an hour), then ``build_report`` timed in this process (one core: the report is single-threaded),
with the size of every file it writes.

    python scripts/report_benchmark.py --sequences 1000000 --work /tmp/report-bench
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from virnucpro_tui.core.outputs import Prediction, SequenceSummary
from virnucpro_tui.pool import events as ev
from virnucpro_tui.testing.finished_run import job_files, write_manifest

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def make_run(root: Path, sequences: int, length: int, seed: int = 7) -> None:
    """A finished run directory as ``run`` writes it (one input, so its outputs are at the top)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    fasta = root / "reads.fa"
    p_virus = rng.beta(0.6, 0.9, sequences).astype(np.float32)
    block = 10_000
    with job_files(root, fasta.name) as (fa, preds, summary):
        for start in range(0, sequences, block):
            n = min(block, sequences - start)
            letters = BASES[rng.integers(0, 4, size=(n, length))]
            for i in range(n):
                k = start + i
                rid = f"read_{k:08d}"
                fa.write(f">{rid} sample=bench\n{letters[i].tobytes().decode()}\n")
                p = p_virus[k]
                pred = Prediction(f"{rid}_chunk_1F1", np.float32(1 - p), p)
                preds.write(pred.row())
                s = SequenceSummary(rid, length, 1, 1, 1, int(p >= pred.p_others), p)
                summary.write(s.row())
    inputs = [
        {
            "job": "reads",
            "path": str(fasta),
            "sha256": "0" * 64,
            "bytes": fasta.stat().st_size,
            "records": sequences,
            "chunks": sequences,
        }
    ]
    manifest = {
        "format": "virnucpro-tui-run/1",
        "status": "complete",
        "command": ["bench"],
        "inputs": inputs,
        "settings": {"chunk_length": 500, "shard_size": 2048, "precision": "bf16", "dedup": True},
        "models": {},
        "demo": False,
        "devices": ["GPU 0", "GPU 1"],
        "versions": {"virnucpro-tui": "bench"},
    }
    write_manifest(root, manifest)
    write_events(root / "events.jsonl", sequences)


def write_events(path: Path, frames: int, seconds: float = 3600.0) -> None:
    t0 = 1.8e9
    workers = (
        ev.SlotInfo(0, "cuda", 0, "GPU-0", "H100"),
        ev.SlotInfo(1, "cuda", 1, "GPU-1", "H100"),
    )
    out = [
        ev.RunStarted(
            ts=t0,
            out=str(path.parent),
            inputs=("reads.fa",),
            jobs=("reads",),
            devices=("GPU 0", "GPU 1"),
            workers=workers,
            demo=False,
            notice=None,
            resumed=False,
            chunk_length=500,
            shard_size=2048,
            precision="bf16",
            backend="local",
            pid=1,
            persistent=True,
            sizes=(),
        )
    ]
    shards = -(-frames // 2048)
    for s in range(shards):
        t = t0 + (s + 1) * seconds / shards
        out.append(
            ev.ShardDone(
                ts=t,
                worker=s % 2,
                job="reads",
                shard=s,
                frames=2048,
                seconds=2 * seconds / shards,
                tokens=0,
                virus_frames=0,
                others_frames=0,
                histogram=(),
                top=(),
            )
        )
        if s % 50 == 49:
            out.append(
                ev.CacheCleared(
                    ts=t,
                    worker=s % 2,
                    reason="periodic",
                    bytes_freed=2**30,
                    reserved_before=2**34,
                    reserved_after=2**33,
                )
            )
    for k in range(int(seconds / 2)):  # memory every 2 s per worker
        for w in (0, 1):
            out.append(
                ev.GpuMemory(
                    ts=t0 + 2 * k,
                    worker=w,
                    kind="cuda",
                    allocated=2**34,
                    reserved=int(2**34 * (1.1 + 0.2 * np.sin(k / 40 + w))),
                    peak=2**35,
                    free=2**35,
                    total=80 * 2**30,
                )
            )
    out.append(
        ev.RunDone(
            ts=t0 + seconds,
            status=ev.RunStatus.COMPLETE,
            exit_code=0,
            seconds=seconds,
            frames=frames,
            resumable=False,
            jobs={},
        )
    )
    out.sort(key=lambda e: e.ts)
    path.write_bytes(b"".join(ev.encode_event(e) + b"\n" for e in out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=1_000_000)
    parser.add_argument("--length", type=int, default=150, help="bases per sequence")
    parser.add_argument("--work", type=Path, default=Path("/tmp/report-bench"))
    args = parser.parse_args()
    run_dir = args.work / f"run-{args.sequences}"
    if not (run_dir / "manifest.json").exists():
        t = time.perf_counter()
        make_run(run_dir, args.sequences, args.length)
        print(f"made {run_dir} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    from virnucpro_tui.report.build import ReportOptions, build_report

    out = args.work / f"report-{args.sequences}"
    wall, cpu = time.perf_counter(), time.process_time()
    written = build_report(run_dir, ReportOptions(out=out))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "sequences": args.sequences,
        "frames": args.sequences,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": round(rss),
        "files": {p.name: p.stat().st_size for p in written},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
