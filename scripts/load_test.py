#!/usr/bin/env python
"""Load test (a benchmark command, not a test): memory and event volume of a long demo run.

Generates an input of about N frames of ORF-rich synthetic DNA (A/C/G with rare T, so nearly
every chunk keeps all six frames), runs ``virnucpro-tui run --demo --no-ui`` on it, samples
the RSS of the orchestrator and of every worker once a second with psutil, and reports the
peak RSS per process, RSS at 10%, 50% and 100% of progress (flat means nothing grows with the
input), events per second by type, the size of events.jsonl and the wall time. Writes JSON
and prints a table.

    .venv/bin/python scripts/load_test.py --frames 200000 --devices cpu:2 --json load.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from virnucpro_tui.core.fasta import FastaRecord  # noqa: E402
from virnucpro_tui.core.prepare import prepare_records  # noqa: E402

MILESTONES = (10, 50, 100)
MiB = 2**20


# -- input ------------------------------------------------------------------------------------


def orf_rich_record(rng: random.Random, length: int, t_rate: float = 0.002) -> str:
    """A/C/G only has no stop codon on either strand; a rare T drops a few frames."""
    return "".join("T" if rng.random() < t_rate else rng.choice("ACG") for _ in range(length))


def write_input(path: Path, frames: int, length: int, seed: int = 1) -> dict[str, int]:
    """Records of 500 to 3,000 bp until ``frames`` frames; counts them with the real preparation."""
    rng = random.Random(seed)
    made = records = bases = chunks = 0
    with path.open("w") as fh:
        while made < frames:
            seq = orf_rich_record(rng, rng.randint(500, 3_000))
            rid = f"contig_{records:07d}"
            prepared = next(prepare_records([FastaRecord(records, rid, rid, seq)], length))
            made += sum(len(f) for f in prepared.frames)
            chunks += len(prepared.chunks)
            bases += len(seq)
            records += 1
            fh.write(f">{rid} synthetic load-test contig\n")
            fh.writelines(seq[i : i + 80] + "\n" for i in range(0, len(seq), 80))
    return {"frames": made, "records": records, "bases": bases, "chunks": chunks}


# -- watching the run ---------------------------------------------------------------------------


class EventTail:
    """Reads new complete lines of events.jsonl; follows a rotation (new inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.buffer = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if self.inode is not None and stat.st_ino != self.inode:
            self.offset, self.buffer = 0, b""  # rotated: events.jsonl is a new file
        self.inode = stat.st_ino
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@dataclass
class ProcessTrack:
    label: str
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, progress, rss)

    @property
    def peak(self) -> int:
        return max((rss for _t, _p, rss in self.samples), default=0)

    def at(self, percent: int) -> int | None:
        """RSS at the first sample that reached ``percent`` of the frames; for 100, the last
        sample of the process (a worker stops as the last frames finish; the orchestrator
        then assembles the outputs)."""
        if percent >= 100:
            return self.samples[-1][2] if self.samples else None
        return next((rss for _t, p, rss in self.samples if p * 100 >= percent), None)


@dataclass
class Watch:
    total_frames: int
    frames_done: int = 0
    worker_of_pid: dict[int, str] = field(default_factory=dict)
    tracks: dict[int, ProcessTrack] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def progress(self) -> float:
        return min(1.0, self.frames_done / max(1, self.total_frames))

    def apply(self, event: dict[str, Any]) -> None:
        self.counts[event["type"]] += 1
        self.first_ts = self.first_ts or event["ts"]
        self.last_ts = event["ts"]
        if event["type"] == "shard_done":
            self.frames_done += int(event.get("frames", 0))
        if event["type"] == "worker_state" and event.get("pid"):
            self.worker_of_pid[event["pid"]] = (
                f"worker {event['worker']} (gen {event.get('generation', 0)})"
            )

    def sample(self, main: psutil.Process) -> None:
        now = time.time()
        procs = [main]
        try:
            procs += main.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                cmd = " ".join(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if "resource_tracker" in cmd:
                continue
            label = (
                "orchestrator"
                if proc.pid == main.pid
                else self.worker_of_pid.get(proc.pid, f"pid {proc.pid}")
            )
            track = self.tracks.setdefault(proc.pid, ProcessTrack(label))
            track.label = label
            track.samples.append((now, self.progress, rss))


def run_and_watch(
    args: argparse.Namespace, input_path: Path, out: Path, total_frames: int
) -> tuple[Watch, float, int]:
    cmd = [
        sys.executable,
        "-m",
        "virnucpro_tui",
        "run",
        str(input_path),
        "--out",
        str(out),
        "--demo",
        "--no-ui",
        "--devices",
        args.devices,
        "--length",
        str(args.length),
        "--restart",
    ]
    if args.shard_size:
        cmd += ["--shard-size", str(args.shard_size)]
    watch, tail = Watch(total_frames), EventTail(out / "events.jsonl")
    log = (out.parent / f"{out.name}.stderr.log").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)
    main = psutil.Process(proc.pid)
    while proc.poll() is None:
        for event in tail.read():
            watch.apply(event)
        watch.sample(main)
        time.sleep(args.interval)
    for event in tail.read():
        watch.apply(event)
    return watch, time.perf_counter() - start, proc.returncode


# -- report -----------------------------------------------------------------------------------


def hardware() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    import torch

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
    }


def events_size(out: Path) -> int:
    return sum(p.stat().st_size for p in out.glob("events.jsonl*"))


def report(
    args: argparse.Namespace, made: dict[str, int], watch: Watch, wall: float, code: int, out: Path
) -> dict[str, Any]:
    span = max(1e-9, (watch.last_ts or 0) - (watch.first_ts or 0))
    total_events = sum(watch.counts.values())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "hardware": hardware(),
        "input": made,
        "devices": args.devices,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "frames_per_s": round(watch.frames_done / wall, 1),
        "frames_done": watch.frames_done,
        "events": {"total": total_events, "per_s": round(total_events / span, 2),
                   "by_type_per_s": {k: round(v / span, 3) for k, v in watch.counts.most_common()},
                   "jsonl_bytes": events_size(out), "bytes_per_frame": round(events_size(out) / max(1, watch.frames_done), 1)},
        "processes": [{"process": t.label, "peak_rss_mib": round(t.peak / MiB, 1),
                       **{f"rss_at_{m}pct_mib": (round(v / MiB, 1) if (v := t.at(m)) is not None else None) for m in MILESTONES},
                       "samples": len(t.samples)}
                      for t in sorted(watch.tracks.values(), key=lambda t: (t.label != "orchestrator", t.label))],
    }  # fmt: skip


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{result['input']['frames']:,} frames ({result['input']['records']:,} records, "
        f"{result['input']['bases'] / 1e6:.1f} Mbp) on {result['devices']}: exit {result['exit_code']}, "
        f"{result['wall_s']:,.0f} s wall, {result['frames_per_s']:,.1f} frames/s"
    )
    head = f"{'process':<22}{'peak RSS':>11}{'at 10%':>10}{'at 50%':>10}{'at 100%':>10}"
    print(head + "\n" + "-" * len(head))
    for p in result["processes"]:
        cells = [p[f"rss_at_{m}pct_mib"] for m in MILESTONES]
        print(
            f"{p['process']:<22}{p['peak_rss_mib']:>8.1f} MiB"
            + "".join(f"{c:>10.1f}" if c is not None else f"{'-':>10}" for c in cells)
        )
    ev = result["events"]
    print(
        f"\nevents: {ev['total']:,} ({ev['per_s']:.1f}/s), events.jsonl {ev['jsonl_bytes'] / MiB:.1f} MiB "
        f"({ev['bytes_per_frame']:.0f} B/frame)"
    )
    for kind, rate in ev["by_type_per_s"].items():
        print(f"  {kind:<16}{rate:>9.2f}/s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--frames", type=int, default=1_000_000, help="frames to generate (default 1,000,000)"
    )
    p.add_argument("--devices", default="cpu:2", help="--devices of the run (default cpu:2)")
    p.add_argument("--length", type=int, default=500, help="chunk length (default 500)")
    p.add_argument(
        "--shard-size", type=int, help="--shard-size of the run (default: the demo default)"
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    p.add_argument(
        "--workdir", type=Path, help="where the input and run go (default: a temporary directory)"
    )
    p.add_argument("--json", type=Path, help="write the result as JSON here")
    args = p.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="virnucpro-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    input_path = workdir / f"load_{args.frames}.fa"
    print(f"generating {args.frames:,} frames into {input_path} ...", flush=True)
    made = write_input(input_path, args.frames, args.length)
    out = workdir / "run"
    print(f"running on {args.devices} -> {out} (progress in {out}.stderr.log) ...", flush=True)
    watch, wall, code = run_and_watch(args, input_path, out, made["frames"])
    result = report(args, made, watch, wall, code, out)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwritten: {args.json}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
