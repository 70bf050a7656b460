"""A persistent worker process: one per device, models loaded lazily on the first task and kept.

It talks to the orchestrator over its own duplex pipe (tasks in, events out). A private pipe
per worker, unlike a shared ``multiprocessing.Queue``, holds no lock that a SIGKILLed worker
could leave taken. Its stdout and stderr go to ``logs/worker-<n>.log``, never to the terminal.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from virnucpro_tui.core.shards import Shard, shard_path, write_shard_result
from virnucpro_tui.errors import disk_full_error, is_disk_full
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.pool.devices import DeviceSlot
from virnucpro_tui.pool.events import Event, make_event
from virnucpro_tui.pool.faults import FaultPlan

HISTOGRAM_BINS = 20
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # ignored by workers; the orchestrator handles them


@dataclass
class WorkerConfig:
    slot: DeviceSlot
    run_dir: Path
    files: ModelFiles
    settings: EngineSettings = field(default_factory=EngineSettings)
    heartbeat_s: float = 1.0
    memory_every_s: float = 2.0
    clear_cache_every: int = 10
    memory_fraction: float = 0.9
    alloc_conf: str = "expandable_segments:True"
    torch_threads: int | None = None
    generation: int = 0
    parent_pid: int = 0

    @property
    def log_path(self) -> Path:
        return self.run_dir / "logs" / f"worker-{self.slot.worker}.log"


def worker_environment(cfg: WorkerConfig) -> dict[str, str]:
    """Variables a worker needs before torch is imported."""
    env = {
        "PYTORCH_CUDA_ALLOC_CONF": cfg.alloc_conf,
        "PYTORCH_ALLOC_CONF": cfg.alloc_conf,
        "PYTHONUNBUFFERED": "1",
    }
    env["CUDA_VISIBLE_DEVICES"] = cfg.slot.uuid if cfg.slot.kind == "cuda" and cfg.slot.uuid else ""
    if cfg.torch_threads:
        env["OMP_NUM_THREADS"] = str(cfg.torch_threads)
    if cfg.slot.kind == "cpu":  # CPU workers share the cores: no extra tokenizer threads
        env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def worker_main(cfg: WorkerConfig, conn: Connection) -> None:
    """Process entry point (spawn)."""
    _redirect_output(cfg.log_path)
    os.environ.update(worker_environment(cfg))
    # The orchestrator decides when we stop: a Ctrl-C, or a SIGTERM sent to the whole process
    # group (systemd, SLURM), reaches it too and it finishes or abandons our shard. If it dies
    # instead, the heartbeat thread notices and exits.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the pool until here
    print(
        f"worker {cfg.slot.worker} generation {cfg.generation} pid {os.getpid()} on {cfg.slot.label}",
        flush=True,
    )
    code = Worker(cfg, _pipe_sender(conn)).run_process(conn)
    sys.stdout.flush()
    os._exit(code)


def _pipe_sender(conn: Connection) -> Callable[[Event], None]:
    def send(event: Event) -> None:
        try:
            conn.send(event)
        except (BrokenPipeError, EOFError, OSError):
            os._exit(3)  # orchestrator gone: never linger as an orphan

    return send


def _redirect_output(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


class Worker:
    """The device-side logic, independent of transport: a process over a pipe (here) or a Ray
    actor (``ray_backend``) delivers tasks and carries the events ``send_event`` is given."""

    def __init__(self, cfg: WorkerConfig, send_event: Callable[[Event], None]) -> None:
        self.cfg = cfg
        self.send_event = send_event
        self.n = cfg.slot.worker
        self._send_lock = threading.Lock()
        self.state = "starting"
        self.job: str | None = None
        self.shard: int | None = None
        self.last_progress = time.time()
        self.shards_done = 0
        self.faults = FaultPlan.from_env(self.n, cfg.generation)
        self.engine: Any = None
        self.device: Any = None

    # -- events ---------------------------------------------------------------------------
    def send(self, type_: str, **fields: Any) -> None:
        event = make_event(type_, worker=self.n, job=fields.pop("job", self.job), **fields)
        with self._send_lock:
            self.send_event(event)

    def set_state(self, state: str, **fields: Any) -> None:
        self.state = state
        self.send(
            "worker_state",
            state=state,
            device=self.cfg.slot.label,
            pid=os.getpid(),
            generation=self.cfg.generation,
            **fields,
        )

    def emit_engine(self, type_: str, **fields: Any) -> None:
        self.last_progress = time.time()
        self.send(type_, shard=self.shard, **fields)

    # -- main loop ------------------------------------------------------------------------
    def start(self) -> None:
        """Set up torch on the device and start heartbeats; models load on the first task."""
        self.set_state("starting", uuid=self.cfg.slot.uuid)
        self._setup_torch()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        from virnucpro_tui.models.engine import Engine

        self.engine = Engine(self.cfg.files, self.device, self.cfg.settings, emit=self.emit_engine)
        if self.faults.active:
            self.engine.before_batch = self.faults.before_batch
        self.set_state("idle")

    def run_process(self, conn: Connection) -> int:
        """The worker process's loop: tasks in order from the pipe, until told to stop."""
        self.start()
        tasks: queue.Queue[Any] = queue.Queue()
        threading.Thread(
            target=self._receive_loop, args=(conn, tasks), name="receiver", daemon=True
        ).start()
        self.load_eagerly()  # while the orchestrator prepares the inputs
        return self.serve(tasks)

    def serve(self, tasks: queue.Queue[Any]) -> int:
        """Run shards from ``tasks`` in order until a ``None``: 0 when stopped, 2 when this
        worker cannot go on. Any transport (pipe, Ray actor) feeds it; call ``start`` first."""
        with ThreadPoolExecutor(1, thread_name_prefix="tokenize") as tokenizer:
            lookahead: tuple[Any, Future[Any] | None] | None = None
            while True:
                item, tokens = lookahead or (tasks.get(), None)
                lookahead = self._look_ahead(tasks, tokenizer) if item is not None else None
                if item is None:
                    self.set_state("stopped")
                    return 0
                if not self.handle_task(item, tokens):
                    return 2

    def load_eagerly(self) -> None:
        """Load and compile the models now instead of at the first task (``eager_load``;
        default: on GPUs). A failure is left to the first task, which reports it as usual."""
        eager = self.cfg.settings.eager_load
        if eager is False or (eager is None and self.cfg.slot.kind != "cuda"):
            return
        if self.faults.fail_load:
            return
        self.set_state("loading")
        try:
            self.engine.load()
        except Exception:  # noqa: BLE001 - the first task loads again and reports the error
            traceback.print_exc()
        self.set_state("idle")

    def _look_ahead(
        self, tasks: queue.Queue[Any], tokenizer: ThreadPoolExecutor
    ) -> tuple[Any, Future[Any] | None] | None:
        """Take the next queued shard, if any, and tokenize it while the current one computes."""
        try:
            upcoming = tasks.get_nowait()
        except queue.Empty:
            return None
        if upcoming is None or self.engine is None or not self.engine.loaded:
            return upcoming, None
        return upcoming, tokenizer.submit(self.engine.tokenize, upcoming.frames)

    def _receive_loop(self, conn: Connection, tasks: queue.Queue[Any]) -> None:
        """Tasks go to the main thread in order; control messages act at once."""
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                os._exit(3)
            kind = msg[0]
            if kind == "task":
                tasks.put(msg[1])
            elif kind == "clear_cache":
                self.clear_cache(msg[1])
            elif kind == "stop":
                tasks.put(None)
                return

    def _setup_torch(self) -> None:
        import torch

        if self.cfg.torch_threads:
            torch.set_num_threads(self.cfg.torch_threads)
        if self.cfg.slot.kind == "cuda":
            self.device = torch.device("cuda", 0)
            torch.cuda.set_device(self.device)
            torch.cuda.set_per_process_memory_fraction(self.cfg.memory_fraction, self.device)
        else:
            self.device = torch.device("cpu")

    def handle_task(self, shard: Shard, tokens: Future[Any] | None = None) -> bool:
        """Score one shard and write its result; False when this worker cannot go on.
        ``tokens``: the shard's token ids, computed ahead in another thread."""
        self.job, self.shard = shard.job, shard.index
        self.last_progress = time.time()
        self.faults.on_shard_start(self.shards_done + 1)
        try:
            if not self.engine.loaded:
                self.set_state("loading")
                if self.faults.fail_load:
                    raise RuntimeError("model loading failed (injected fault)")
                self.engine.load()
            self.set_state("busy", shard=shard.index, frames=len(shard))
            self.send(
                "progress",
                shard=shard.index,
                stage="start",
                frames_done=0,
                frames_total=len(shard),
                tokens=0,
                seconds=0.0,
            )
            result = self.engine.process_shard(
                shard,
                progress=self._progress_reporter(shard),
                tokens=tokens.result() if tokens is not None else None,
            )
            result.worker = self.n
            self._write_result(shard, result)
        except Exception as exc:  # noqa: BLE001 - reported, then the orchestrator decides
            if is_disk_full(exc):
                self._report_disk_full(shard)
                return True
            fatal = not self.engine.loaded
            self.send(
                "error",
                shard=shard.index,
                fatal=fatal,
                message=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=8)[-4000:],
            )
            traceback.print_exc()
            if fatal:
                self.set_state("crashed", reason="model load failed")
                return False
            self.set_state("idle")
            return True
        self.shards_done += 1
        self.send(
            "shard_done",
            shard=shard.index,
            frames=len(shard),
            seconds=round(result.seconds, 4),
            tokens=result.tokens,
            stage_seconds=result.stage_seconds,
            **score_stats(result.frame_ids, result.probs),
        )
        if self.cfg.clear_cache_every and self.shards_done % self.cfg.clear_cache_every == 0:
            self.clear_cache("periodic")
        self.job = self.shard = None
        self.set_state("idle")
        return True

    def _write_result(self, shard: Shard, result: Any) -> None:
        self.faults.before_shard_write(self.shards_done + 1)
        write_shard_result(shard_path(self.cfg.run_dir / "shards", shard.job, shard.index), result)

    def _report_disk_full(self, shard: Shard) -> None:
        """No retry: every worker writes to the same disk. The orchestrator stops the run."""
        path = shard_path(self.cfg.run_dir / "shards", shard.job, shard.index)
        error = disk_full_error(path, f"writing the result of shard {shard.key}")
        self.send(
            "error",
            shard=shard.index,
            fatal=False,
            disk_full=True,
            path=str(path),
            message=str(error),
        )
        self.set_state("idle")

    def _progress_reporter(self, shard: Shard):
        start = time.perf_counter()
        last_sent = 0.0
        n = len(shard)

        def report(
            stage: str, done: int, total: int, tokens: int, stage_seconds: float | None = None
        ) -> None:
            nonlocal last_sent
            self.last_progress = time.time()
            now = time.perf_counter()
            if now - last_sent < 0.25 and done < total:
                return
            last_sent = now
            # frames count as done once both models have seen them: DNABERT-S is half the way
            frames_done = done // 2 if stage == "dnabert" else n // 2 + done - done // 2
            self.send(
                "progress",
                shard=shard.index,
                stage=stage,
                frames_done=min(frames_done, n),
                frames_total=n,
                stage_done=done,
                stage_total=total,
                tokens=tokens,
                seconds=round(now - start, 4),
                **({} if stage_seconds is None else {"stage_seconds": stage_seconds}),
            )

        return report

    # -- memory -----------------------------------------------------------------------------
    def memory_snapshot(self) -> dict[str, Any]:
        if self.device is not None and self.device.type == "cuda":
            import torch

            free, total = torch.cuda.mem_get_info(self.device)
            return {
                "kind": "cuda",
                "allocated": int(torch.cuda.memory_allocated(self.device)),
                "reserved": int(torch.cuda.memory_reserved(self.device)),
                "peak": int(torch.cuda.max_memory_allocated(self.device)),
                "free": int(free),
                "total": int(total),
            }
        import psutil

        proc = psutil.Process()
        vm = psutil.virtual_memory()
        rss = int(proc.memory_info().rss)
        peak = _peak_rss()
        return {
            "kind": "cpu",
            "allocated": rss,
            "reserved": rss,
            "peak": max(peak, rss),
            "free": int(vm.available),
            "total": int(vm.total),
        }

    def clear_cache(self, reason: str) -> None:
        prev_state = self.state
        self.set_state("clearing", reason=reason)
        before = self.memory_snapshot()["reserved"]
        gc.collect()
        if self.device is not None and self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        else:
            _malloc_trim()
        after = self.memory_snapshot()["reserved"]
        self.send(
            "cache_cleared",
            reason=reason,
            bytes_freed=max(before - after, 0),
            reserved_before=before,
            reserved_after=after,
        )
        self.set_state(prev_state if prev_state != "clearing" else "idle")

    def _heartbeat_loop(self) -> None:
        last_memory = 0.0
        parent = self.cfg.parent_pid
        while True:
            if parent and os.getppid() != parent:
                os._exit(3)  # the orchestrator died (kill -9): exit, free the GPU
            now = time.time()
            self.send(
                "heartbeat",
                state=self.state,
                shard=self.shard,
                since_progress=round(now - self.last_progress, 2),
                pid=os.getpid(),
            )
            if now - last_memory >= self.cfg.memory_every_s:
                last_memory = now
                with contextlib.suppress(Exception):  # telemetry must never kill the worker
                    self.send("gpu_memory", **self.memory_snapshot())
            time.sleep(self.cfg.heartbeat_s)


def _peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def score_stats(frame_ids: list[str], probs: Any, top: int = 5) -> dict[str, Any]:
    """Compact result statistics for the UI: counts, a P(virus) histogram, the top frames."""
    import numpy as np

    probs = np.asarray(probs, dtype=np.float32)
    if not len(probs):
        return {"virus_frames": 0, "others_frames": 0, "histogram": [0] * HISTOGRAM_BINS, "top": []}
    virus = probs[:, 1] > probs[:, 0]
    hist, _ = np.histogram(probs[:, 1], bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    best = np.argsort(-probs[:, 1], kind="stable")[:top]
    return {
        "virus_frames": int(virus.sum()),
        "others_frames": int((~virus).sum()),
        "histogram": hist.astype(int).tolist(),
        "top": [[frame_ids[i], float(probs[i, 1])] for i in best],
    }
