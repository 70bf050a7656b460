"""The bench's user-side start: ``virnucpro-tui run`` as a user types it, timed from the
command's launch to its first shard written (docs/benchmarks.md#command).

The pipeline section times the orchestrator from its construction, after the command's own
imports, and starts workers without standbys. This runs the real command in a fresh
interpreter on the same model files and compile cache, with standbys on and then off
(docs/architecture.md#worker-interpreters-start-early), so the gain and the whole start show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from virnucpro_tui.models.compile_cache import ENV as COMPILE_CACHE_ENV
from virnucpro_tui.pool.event_sinks import read_events


class Launch(NamedTuple):
    devices: str  # ``--devices``
    shard_size: int


def run_command(
    files: dict[str, str], inputs: Path, out: Path, engine: dict[str, Any], launch: Launch
) -> list[str]:
    """The ``run`` command line of one bench job (the pipeline section's settings)."""
    command = [sys.executable, "-m", "virnucpro_tui", "run", str(inputs), "--out", str(out)]
    command += ["--esm", files["esm"], "--dnabert", files["dnabert"]]
    command += [
        "--classifier",
        files["classifier"],
        "--force-model-length",
        "--no-ui",
        "--no-report",
    ]
    command += ["--precision", engine["precision"], "--shard-size", str(launch.shard_size)]
    return command + ["--devices", launch.devices, "--restart"]


def command_first_shard(
    files: dict[str, str],
    inputs: Path,
    out: Path,
    engine: dict[str, Any],
    launch: Launch,
    standby: bool,
    levers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Seconds from launching ``run`` to its first model load, first shard started and first
    shard written; ``engine["compile_cache"]`` is the cache the command finds; ``levers``:
    environment variables that turn on start-up levers (:data:`START_LEVERS`)."""
    env = {**os.environ, "VIRNUCPRO_TUI_STANDBY": "1" if standby else "0", **(levers or {})}
    env[COMPILE_CACHE_ENV] = str(engine["compile_cache"])
    command = run_command(files, inputs, out, engine, launch)
    launched = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`run` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    events = read_events(out / "events.jsonl")

    def first(kind: str, **match: str) -> float | None:
        times = [
            e["ts"]
            for e in events
            if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        ]
        return round(min(times) - launched, 2) if times else None

    warmups = [e for e in events if e["type"] == "model_load" and e.get("phase") == "warmup_done"]
    cached = [e for e in events if e["type"] == "model_load" and e.get("phase") == "warmup_start"]
    return {
        "model_load_s": first("model_load", phase="start"),
        "first_shard_start_s": first("progress", stage="start"),
        "first_shard_done_s": first("shard_done"),
        "wall_s": round(time.time() - launched, 2),
        "warmup_s": {e["model"]: e["seconds"] for e in warmups},
        "cache_marked_warm": {e["model"]: e.get("cached") for e in cached},
    }


def command_starts(
    files: dict[str, str], work: Path, engine: dict[str, Any], launch: Launch, one_shard: Path
) -> dict[str, Any]:
    """The command's warm start with standbys, then without (same cache, same input): if the
    first command finds anything colder, that counts against standbys, not for them. Then, on
    a cache of their own, every start-up lever (:data:`START_LEVERS`): a first command fills
    that cache (``levers_cold``), the next is timed warm (``levers``)."""
    out: dict[str, Any] = {}
    for standby in (True, False):
        tag = "standby" if standby else "no_standby"
        out[tag] = command_first_shard(
            files, one_shard, work / f"command-{tag}", engine, launch, standby
        )
    own_cache = {**engine, "compile_cache": f"{engine['compile_cache']}-levers"}
    for tag in ("levers_cold", "levers"):
        out[tag] = command_first_shard(
            files, one_shard, work / f"command-{tag}", own_cache, launch, True, START_LEVERS
        )
    return out


# Start-up levers (docs/architecture.md#the-engine-on-a-gpu), named even where they are defaults:
# layers compiled ahead of time and loaded whole, and on a cold cache the models run uncompiled
# while processes beside compile them (both on by default on a GPU since 2026-12-08), and the
# weights through page-locked buffers (off by default).
START_LEVERS = {
    "VIRNUCPRO_TUI_PRECOMPILE": "1",
    "VIRNUCPRO_TUI_STAGED_COPY": "1",
    "VIRNUCPRO_TUI_COMPILE_BESIDE": "1",
}


__all__ = ["START_LEVERS", "Launch", "command_first_shard", "command_starts", "run_command"]
