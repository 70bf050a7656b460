#!/usr/bin/env python
"""Capacity of the orchestrator on one core (a benchmark command, not a test; issue 16 part 1).

The main process's work for a run, with workers that return results at once: validation,
preparation, dispatch over 8 fake slots (``FakeBackend``, real clock), shard result files
(written in this process by the fake workers: a real worker writes its own), assembly of the
outputs and the event stream (``events.jsonl``), with the dashboard (the real Textual app in a
pseudo-terminal, repainting as it does for a user) or with the headless reporter (``--no-ui``).

Each run is a child process pinned to one core (``os.sched_setaffinity``). It reports frames/s
by the wall clock and per CPU-second of the process (user + sys, every thread), the CPU time,
the peak RSS and the event counts. The input is made once by ``scripts/make_sample_data.py``'s
generators: contigs and reads, a share ``--coding`` of them ORF-rich. Prints a table (median
and range over ``--repeat`` runs) and writes JSON.

    .venv/bin/python scripts/capacity.py --frames 200000 --repeat 3 --json capacity.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import random
import resource
import select
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import make_sample_data  # noqa: E402

from virnucpro_tui.core.fasta import FastaRecord  # noqa: E402
from virnucpro_tui.core.prepare import prepare_records  # noqa: E402

MODES = ("no-ui", "ui")
CHUNK_LENGTH = 500
MiB = 2**20
TERMINAL = (50, 200)  # rows, columns of the dashboard's pseudo-terminal


# -- input ----------------------------------------------------------------------------------------
def write_fasta(
    path: Path, frames: int, lengths: tuple[int, int], prefix: str, coding: float, seed: int
) -> dict[str, int]:
    """Records from make_sample_data's generators until ``frames`` frames (counted with the real
    preparation)."""
    rng = random.Random(seed)
    made = records = bases = chunks = 0
    with path.open("w") as fh:
        while made < frames:
            batch = make_sample_data.records(rng, 200, lengths, f"{prefix}{records // 200}", coding)
            parsed = []
            for text in batch:
                header, _, body = text.partition("\n")
                rid = header[1:].split()[0]
                parsed.append(FastaRecord(records, rid, header[1:], body.replace("\n", "")))
                records += 1
            for prepared in prepare_records(parsed, CHUNK_LENGTH):
                made += sum(len(f) for f in prepared.frames)
                chunks += len(prepared.chunks)
                bases += prepared.length
            fh.writelines(batch)
    return {"frames": made, "records": records, "bases": bases, "chunks": chunks}


def make_inputs(workdir: Path, frames: int, coding: float) -> tuple[list[Path], dict[str, Any]]:
    """Contigs (80% of the frames) and reads (20%), made once per (frames, coding)."""
    folder = workdir / f"input-{frames}-{coding:g}"
    marker = folder / "input.json"
    paths = [folder / "contigs.fa", folder / "reads.fa"]
    if marker.exists():
        return paths, json.loads(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    contigs = write_fasta(paths[0], int(frames * 0.8), (400, 4000), "contig", coding, seed=2026)
    reads = write_fasta(paths[1], frames - contigs["frames"], (150, 600), "read", coding, seed=7)
    info = {
        "coding_fraction": coding,
        **{k: contigs[k] + reads[k] for k in contigs},
        "files": {"contigs.fa": contigs, "reads.fa": reads},
    }
    marker.write_text(json.dumps(info, indent=2))
    return paths, info


# -- one measured run (the child process) ---------------------------------------------------------
class Meter:
    """An event sink that counts events and samples CPU time and RSS at run_started/run_done."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.marks: dict[str, dict[str, float]] = {}
        self.frames = 0

    def __call__(self, event: Any) -> None:
        self.counts[event.type] += 1
        if event.type in ("run_started", "run_done"):
            self.marks[event.type] = sample()
        if event.type == "run_done":
            self.frames = event.frames


def sample() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall": time.perf_counter(),
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": _rss_mib(),
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.cpu})
    from virnucpro_tui.models.demo import ensure_demo_models
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles
    from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig
    from virnucpro_tui.testing.fake_backend import FakeBackend

    demo = ensure_demo_models()
    cfg = RunConfig(
        inputs=[Path(p) for p in args.inputs],
        out=Path(args.out),
        models=ModelFiles(Path(demo.esm), Path(demo.dnabert), Path(demo.classifier_500)),
        demo=True,
        devices=f"cpu:{args.slots}",
        engine=EngineSettings(chunk_length=CHUNK_LENGTH, force_model_length=True),
        shard_size=args.shard_size,
        restart=True,
        backend="fake",
        command=["scripts/capacity.py", "--child", args.child],
    )
    backend = FakeBackend(virtual_time=False, write_results=True)
    meter = Meter()
    profiler = _profiler(args.profile_to)
    start = sample()
    if args.child == "ui":
        from virnucpro_tui.ui.launch import EXIT_ON_DONE_ENV, run_dashboard

        os.environ[EXIT_ON_DONE_ENV] = "1"
        code = run_dashboard(cfg, [meter], backend)
    else:
        from virnucpro_tui.console.headless import HeadlessReporter

        reporter = HeadlessReporter(sys.stderr)
        code = Orchestrator(cfg, [reporter, meter], backend=backend).execute()
    end = sample()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile_to)
    result = {
        "mode": args.child,
        "exit_code": code,
        "frames": meter.frames,
        "start": start,
        "run_started": meter.marks.get("run_started"),
        "run_done": meter.marks.get("run_done"),
        "end": end,
        "events": dict(meter.counts),
        "events_jsonl_bytes": (Path(args.out) / "events.jsonl").stat().st_size,
        "affinity": sorted(os.sched_getaffinity(0)),
    }
    Path(args.result).write_text(json.dumps(result))
    return 0


def _profiler(path: str | None) -> Any:
    if not path:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


# -- the parent: runs, table, JSON ----------------------------------------------------------------
def run_child(
    args: argparse.Namespace, mode: str, inputs: list[Path], n: int, tree: Path = ROOT
) -> dict[str, Any]:
    """One measured run of ``mode`` by the code of ``tree`` (this checkout, or --baseline)."""
    name = f"{mode}-{n}" + ("-baseline" if tree != ROOT else "")
    out = args.workdir / f"run-{name}"
    result = args.workdir / f"result-{name}.json"
    result.unlink(missing_ok=True)
    script = str(tree / "scripts" / "capacity.py")
    cmd = [sys.executable, script, "--child", mode, "--out", str(out), "--result", str(result)]
    cmd += ["--cpu", str(args.cpu), "--slots", str(args.slots), "--shard-size"]
    cmd += [str(args.shard_size), "--inputs", *map(str, inputs)]
    if args.profile and n == 0:
        cmd += ["--profile-to", str(args.workdir / f"profile-{name}.pstats")]
    if args.py_spy and n == 0:  # sampled stacks of every thread, collapsed (flame graph input)
        stacks = args.workdir / f"py-spy-{name}.txt"
        spy = [args.py_spy, "record", "-r", "200", "-f", "raw", "--threads", "-o", str(stacks)]
        cmd = [*spy, "--", *cmd]
    load = os.getloadavg()[0]
    drawn = 0
    if mode == "ui":
        rc, tail, drawn = _in_terminal(cmd)
    else:
        log = args.workdir / f"headless-{name}.log"
        with log.open("w") as err:
            rc = subprocess.call(cmd, stderr=err, stdout=subprocess.DEVNULL)
        tail = log.read_text()[-2000:]
    if rc != 0 or not result.exists():
        raise SystemExit(f"{mode} run {n} failed (exit {rc}):\n{tail}")
    data: dict[str, Any] = json.loads(result.read_text())
    data["loadavg_1m_before"] = load
    data["terminal_bytes"] = drawn  # what the dashboard drew (0 with --no-ui)
    data["outputs_ok"] = _check_outputs(out, data["frames"])
    return data


def _in_terminal(cmd: list[str]) -> tuple[int, str, int]:
    """Run ``cmd`` with a pseudo-terminal as its controlling terminal; read (and drop) what it
    draws, as a terminal emulator would. Returns its exit code, the end of what it drew and
    how many bytes it drew."""
    import fcntl
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout, stderr and controlling terminal
        rows, cols = TERMINAL
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.environ["TERM"] = "xterm-256color"
        os.execv(cmd[0], cmd)
    tail, drawn = b"", 0
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        tail, drawn = (tail + data)[-4000:], drawn + len(data)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), tail.decode(errors="replace"), drawn


def _check_outputs(out: Path, frames: int) -> bool:
    """Every frame has its row in a job's prediction_results.txt (header excluded)."""
    rows = 0
    for path in out.glob("*/prediction_results.txt"):
        with path.open("rb") as fh:
            rows += sum(1 for _ in fh) - 1
    return rows == frames and frames > 0


def figures(run: dict[str, Any]) -> dict[str, float]:
    """Per run: the whole execution (validation to outputs) and the run phase (run_started to
    run_done: preparation, dispatch, shard writes, assembly, events)."""
    start, end = run["start"], run["end"]
    began, done = run["run_started"], run["run_done"]
    frames = run["frames"]
    wall, cpu = end["wall"] - start["wall"], end["cpu"] - start["cpu"]
    run_wall, run_cpu = done["wall"] - began["wall"], done["cpu"] - began["cpu"]
    return {
        "frames": frames,
        "wall_s": wall,
        "cpu_s": cpu,
        "frames_per_s": frames / wall,
        "frames_per_cpu_s": frames / cpu,
        "run_wall_s": run_wall,
        "run_cpu_s": run_cpu,
        "run_frames_per_s": frames / run_wall,
        "run_frames_per_cpu_s": frames / run_cpu,
        "setup_cpu_s": began["cpu"] - start["cpu"],
        "core_share": cpu / wall,  # below 1: others ran on the pinned core too
        "peak_rss_mib": end["peak_rss_mib"],
        "rss_at_run_start_mib": began["rss_mib"],
        "rss_at_run_done_mib": done["rss_mib"],
        "events": sum(run["events"].values()),
        "events_jsonl_bytes": run["events_jsonl_bytes"],
        "terminal_bytes": run.get("terminal_bytes", 0),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    table = [figures(r) for r in runs]
    return {
        key: {
            "median": statistics.median(t[key] for t in table),
            "min": min(t[key] for t in table),
            "max": max(t[key] for t in table),
        }
        for key in table[0]
    }


ROWS = (
    ("frames", "frames", "{:,.0f}"),
    ("frames_per_s", "frames/s (wall, validation to outputs)", "{:,.0f}"),
    ("frames_per_cpu_s", "frames per CPU-second (same span)", "{:,.0f}"),
    ("run_frames_per_s", "frames/s (wall, run_started to run_done)", "{:,.0f}"),
    ("run_frames_per_cpu_s", "frames per CPU-second (same span)", "{:,.0f}"),
    ("wall_s", "wall time, s", "{:.2f}"),
    ("cpu_s", "CPU time (user+sys), s", "{:.2f}"),
    ("setup_cpu_s", "of which before run_started, s", "{:.2f}"),
    ("core_share", "share of the pinned core it got", "{:.2f}"),
    ("peak_rss_mib", "peak RSS, MiB", "{:.0f}"),
    ("rss_at_run_done_mib", "RSS at run_done, MiB", "{:.0f}"),
    ("events", "events", "{:,.0f}"),
    ("events_jsonl_bytes", "events.jsonl, bytes", "{:,.0f}"),
    ("terminal_bytes", "drawn on the terminal, bytes", "{:,.0f}"),
)


def print_table(summary: dict[str, dict[str, dict[str, float]]]) -> None:
    modes = list(summary)
    print(f"{'median (min-max)':44}" + "".join(f"{m:>30}" for m in modes))
    for key, label, fmt in ROWS:
        cells = []
        for m in modes:
            s = summary[m][key]
            spread = f" ({fmt.format(s['min'])}-{fmt.format(s['max'])})"
            cells.append(f"{fmt.format(s['median']) + spread:>30}")
        print(f"{label:44}" + "".join(cells))


def hardware() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
    }


def _commit() -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], **_TEXT)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "-uno"], **_TEXT)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


_TEXT: dict[str, Any] = {"capture_output": True, "text": True, "check": False}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=200_000, help="frames in the input (at least)")
    p.add_argument("--coding", type=float, default=0.45, help="share of ORF-rich records")
    p.add_argument("--slots", type=int, default=8, help="fake worker slots")
    p.add_argument("--shard-size", type=int, default=2048)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cpu", type=int, default=0, help="the core every measured run is pinned to")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/virnucpro-capacity"))
    p.add_argument("--profile", action="store_true", help="cProfile the first run of each mode")
    p.add_argument("--py-spy", help="path of py-spy: record the first run of each mode")
    p.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another commit: its runs alternate with this one's (A/B on a busy "
        "machine)",
    )
    p.add_argument("--json", type=Path, help="write the figures here")
    # the measured child process
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--inputs", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    inputs, info = make_inputs(args.workdir, args.frames, args.coding)
    print(
        f"input: {info['frames']:,} frames, {info['chunks']:,} chunks, {info['records']:,} "
        f"records, {info['bases']:,} bases ({inputs[0].parent})",
        file=sys.stderr,
    )
    trees = [(f" ({args.baseline.name})", args.baseline)] if args.baseline else []
    trees.append(("", ROOT))
    runs: dict[str, list[dict[str, Any]]] = {m + t: [] for m in args.modes for t, _ in trees}
    for n in range(args.repeat):
        for mode in args.modes:  # interleaved, so the machine's load falls on all alike
            for label, tree in trees:
                runs[mode + label].append(run_child(args, mode, inputs, n, tree))
                fig = figures(runs[mode + label][-1])
                print(
                    f"{mode + label} run {n + 1}: {fig['frames_per_s']:,.0f} frames/s, "
                    f"{fig['frames_per_cpu_s']:,.0f} per CPU-s",
                    file=sys.stderr,
                )
    summary = {m: summarise(r) for m, r in runs.items()}
    print_table(summary)
    report = {
        "date": started,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "commit": _commit(),
        "hardware": hardware(),
        "pinned_cpu": args.cpu,
        "loadavg_1m_at_end": os.getloadavg()[0],
        "input": info,
        "slots": args.slots,
        "shard_size": args.shard_size,
        "summary": summary,
        "runs": runs,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({m: {k: v["median"] for k, v in s.items()} for m, s in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
