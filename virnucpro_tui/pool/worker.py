"""A persistent worker process: one per device, models loaded lazily on the first task and kept.

It talks to the orchestrator over its own duplex pipe (tasks in, events out). A private pipe
per worker, unlike a shared ``multiprocessing.Queue``, holds no lock that a SIGKILLed worker
could leave taken. Its stdout and stderr go to ``logs/worker-<n>.log``, never to the terminal.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing.util
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from msgspec import UNSET

from virnucpro_tui.core.features import write_shard_features
from virnucpro_tui.core.shards import Shard, write_shard_result
from virnucpro_tui.errors import disk_full_error, is_disk_full
from virnucpro_tui.models.reports import EngineReport
from virnucpro_tui.pool import events as ev
from virnucpro_tui.pool.engine_events import engine_event
from virnucpro_tui.pool.faults import FaultPlan
from virnucpro_tui.pool.inbox import ShardInbox
from virnucpro_tui.pool.transport import (
    ClearCache,
    Command,
    Recall,
    Recalled,
    RunShard,
    ShardKey,
    Stop,
    WorkerMessage,
    shard_key,
)
from virnucpro_tui.pool.worker_config import WorkerConfig

# A stopped worker lets the engine's processes beside finish compiling for the next run
# (models/beside.py) this long, within the pool's grace for a stop (PoolPolicy.stop_timeout_s).
FINISH_COMPILING_S = 20.0


def leave(code: int) -> NoReturn:
    """End the worker process now, after multiprocessing's exit finalizers: a library may hold
    a named semaphore registered with the run's resource tracker (tqdm makes a lock under
    ``torch.compile``), and unless it is unregistered the tracker warns "There appear to be N
    leaked semaphore objects" when the run ends. ``os._exit`` skips the interpreter's slow,
    thread-joining shutdown (and CUDA's teardown), which is why it is used at all."""
    with contextlib.suppress(Exception):
        multiprocessing.util._exit_function()  # type: ignore[attr-defined]  # as a Process's end
    os._exit(code)


def redirect_output(log_path: Path) -> None:
    """Send this process's stdout and stderr to ``log_path`` (a worker never writes to the
    terminal) and take its stdin away."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
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
    actor (``pool/ray/``) delivers shards into a ``ShardInbox`` and carries the messages
    ``send_event`` is given."""

    def __init__(self, cfg: WorkerConfig, send_event: Callable[[WorkerMessage], None]) -> None:
        self.cfg = cfg
        self.send_event = send_event
        self.n = cfg.slot.worker
        self._send_lock = threading.Lock()
        self.state = ev.WorkerState.STARTING
        self.job: str | None = None
        self.shard: int | None = None
        self.last_progress = time.time()
        self.shards_done = 0
        self.faults = FaultPlan.from_env(self.n, cfg.generation)
        self.engine: Any = None
        self.device: Any = None

    # -- events ---------------------------------------------------------------------------
    def send(self, message: WorkerMessage) -> None:
        with self._send_lock:
            self.send_event(message)

    def set_state(self, state: ev.WorkerState, **fields: Any) -> None:
        self.state = state
        self.send(
            ev.WorkerStateChanged(
                worker=self.n,
                job=self.job,
                state=state,
                device=self.cfg.slot.label,
                pid=os.getpid(),
                generation=self.cfg.generation,
                **fields,
            )
        )

    def on_engine_report(self, report: EngineReport) -> None:
        """The engine's reports (model loads, OOM splits) as events."""
        self.last_progress = time.time()
        self.send(engine_event(report, self.n, self.job, self.shard))

    # -- main loop ------------------------------------------------------------------------
    def start(self) -> None:
        """Set up torch on the device and start heartbeats; models load on the first task."""
        self.set_state(ev.WorkerState.STARTING, uuid=self.cfg.slot.uuid)
        # beats from now: importing torch can take longer than the hang timeout on a busy node
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        self.faults.on_start()
        self._setup_torch()
        from virnucpro_tui.models.engine import Engine

        self.engine = Engine(
            self.cfg.files, self.device, self.cfg.engine, report=self.on_engine_report
        )
        if self.faults.active:
            self.engine.before_batch = self.faults.before_batch
        self.set_state(ev.WorkerState.IDLE)

    def run_process(self, conn: Connection) -> int:
        """The worker process's loop: shards in order from the pipe, until told to stop."""
        self.start()
        inbox = ShardInbox()
        threading.Thread(
            target=self._receive_loop, args=(conn, inbox), name="receiver", daemon=True
        ).start()
        self.load_eagerly()  # while the orchestrator prepares the inputs
        return self.serve(inbox)

    def serve(self, inbox: ShardInbox) -> int:
        """Run shards from ``inbox`` in order until it is stopped: 0 then, 2 when this worker
        cannot go on. Any transport (pipe, Ray actor) feeds it; call ``start`` first."""
        with ThreadPoolExecutor(1, thread_name_prefix="tokenize") as tokenizer:
            ahead: dict[ShardKey, Future[Any]] = {}
            while True:
                shard = inbox.take(self._start_shard)
                if shard is None:
                    if self.engine is not None:  # within the pool's 30-s grace for a stop
                        self.engine.finish(FINISH_COMPILING_S)
                    self.set_state(ev.WorkerState.STOPPED)
                    return 0
                tokens = ahead.pop(shard.key, None)
                ahead = self._tokenize_ahead(inbox.peek(), ahead, tokenizer)
                if not self.handle_task(shard, tokens):
                    return 2

    def load_eagerly(self) -> None:
        """Load and compile the models now instead of at the first shard (``eager_load``;
        default: on GPUs). A failure is left to the first shard, which reports it as usual."""
        eager = self.cfg.engine.eager_load
        if eager is False or (eager is None and self.cfg.slot.kind != "cuda"):
            return
        if self.faults.fail_load:
            return
        self.set_state(ev.WorkerState.LOADING)
        try:
            self.engine.load()
        except Exception:  # noqa: BLE001 - the first shard loads again and reports the error
            traceback.print_exc()
        self.set_state(ev.WorkerState.IDLE)

    def _tokenize_ahead(
        self,
        upcoming: Shard | None,
        ahead: dict[ShardKey, Future[Any]],
        tokenizer: ThreadPoolExecutor,
    ) -> dict[ShardKey, Future[Any]]:
        """Tokenize the next shard while the current one computes (only the next is kept: a
        recalled shard's tokens are dropped)."""
        if upcoming is None or self.engine is None or not self.engine.loaded:
            return {}
        future = ahead.get(upcoming.key) or tokenizer.submit(self.engine.tokenize, upcoming.frames)
        return {upcoming.key: future}

    def recall(self, inbox: ShardInbox) -> Recalled:
        """Give back the shards not started; name the one running."""
        shards = inbox.recall()
        running = shard_key(self.job, self.shard) if self.shard is not None else None
        return Recalled(tuple(s.key for s in shards), running)

    def _receive_loop(self, conn: Connection, inbox: ShardInbox) -> None:
        """Shards go to the main thread in order; control commands act at once."""
        while True:
            try:
                command: Command = conn.recv()
            except (EOFError, OSError):
                leave(3)
            if isinstance(command, RunShard):
                inbox.put(command.shard)
            elif isinstance(command, ClearCache):
                self.clear_cache(command.reason)
            elif isinstance(command, Recall):
                self.send(self.recall(inbox))
            elif isinstance(command, Stop):
                inbox.stop()
                return

    def _setup_torch(self) -> None:
        import torch

        if self.cfg.torch_threads:
            torch.set_num_threads(self.cfg.torch_threads)
        if self.cfg.slot.kind == "cuda":
            device = torch.device("cuda", 0)
            torch.cuda.set_device(device)
            torch.cuda.set_per_process_memory_fraction(self.cfg.settings.memory_fraction, device)
        else:
            device = torch.device("cpu")
        self.device = device  # last: the heartbeat thread samples memory once it is set

    def _start_shard(self, shard: Shard) -> None:
        """A shard leaves the inbox: it is this worker's now (announced before any recall)."""
        self.job, self.shard = shard.job, shard.index
        self.last_progress = time.time()
        self.faults.on_shard_start(self.shards_done + 1)
        if self.engine.loaded:
            self.set_state(ev.WorkerState.BUSY, shard=shard.index, frames=len(shard))
        else:
            self.set_state(ev.WorkerState.LOADING)

    def _load_models(self, shard: Shard) -> None:
        if self.faults.fail_load:
            raise RuntimeError("model loading failed (injected fault)")
        self.engine.load()
        self.send_memory()  # what the models hold, before the first shard's batches
        self.set_state(ev.WorkerState.BUSY, shard=shard.index, frames=len(shard))

    def handle_task(self, shard: Shard, tokens: Future[Any] | None = None) -> bool:
        """Score one shard (started by ``_start_shard``) and write its result; False when this
        worker cannot go on. ``tokens``: its token ids, computed ahead in another thread."""
        try:
            if self.state == ev.WorkerState.LOADING:
                self._load_models(shard)
            if self.faults.fail_on_shard == self.shards_done + 1:
                raise RuntimeError(f"shard {shard.key} failed (injected fault)")
            self.send(ev.Progress.shard_started(self.n, shard.job, shard.index, len(shard)))
            result = self.engine.process_shard(
                shard,
                progress=self._progress_reporter(shard),
                tokens=tokens.result() if tokens is not None else None,
                keep_features=shard.save_features,
            )
            result.worker = self.n
            self._write_result(shard, result)
        except Exception as exc:  # noqa: BLE001 - reported, then the orchestrator decides
            if is_disk_full(exc):
                self._report_disk_full(shard)
                return True
            fatal = not self.engine.loaded
            traceback.print_exc()  # into the log before the event: a fatal one stops this worker
            sys.stderr.flush()
            self.send(
                ev.ErrorEvent.of_shard(
                    self.n,
                    shard,
                    f"{type(exc).__name__}: {exc}",
                    fatal=fatal,
                    traceback=traceback.format_exc(limit=8)[-4000:],
                )
            )
            if fatal:
                self.set_state(ev.WorkerState.CRASHED, reason="model load failed")
                return False
            self.set_state(ev.WorkerState.IDLE)
            return True
        self.shards_done += 1
        self.job = self.shard = None  # before the result: a recall answered now names no shard
        self.send(
            ev.ShardDone(
                worker=self.n,
                job=shard.job,
                shard=shard.index,
                frames=len(shard),
                seconds=round(result.seconds, 4),
                tokens=result.tokens,
                stage_seconds=result.stage_seconds,
                **score_stats(result.frame_ids, result.probs),
            )
        )
        self.set_state(ev.WorkerState.IDLE)  # before a periodic clear, which restores the state
        every = self.cfg.settings.clear_cache_every
        if every and self.shards_done % every == 0:
            self.clear_cache("periodic")
        return True

    def _write_result(self, shard: Shard, result: Any) -> None:
        """The features first (when asked for), then the result: a shard whose result exists
        has its features too (docs/features.md)."""
        self.faults.before_shard_write(self.shards_done + 1)
        if shard.save_features:
            write_shard_features(
                self.cfg.layout.shard_features(shard.job, shard.index),
                shard.job,
                shard.index,
                result.frame_ids,
                result.features,
            )
        write_shard_result(self.cfg.layout.shard_result(shard.job, shard.index), result)

    def _report_disk_full(self, shard: Shard) -> None:
        """No retry: every worker writes to the same disk. The orchestrator stops the run."""
        path = self.cfg.layout.shard_result(shard.job, shard.index)
        error = disk_full_error(path, f"writing the result of shard {shard.key}")
        self.send(
            ev.ErrorEvent.of_shard(
                self.n, shard, str(error), fatal=False, disk_full=True, path=str(path)
            )
        )
        self.set_state(ev.WorkerState.IDLE)

    def _progress_reporter(self, shard: Shard) -> Callable[..., None]:
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
                ev.Progress(
                    worker=self.n,
                    job=shard.job,
                    shard=shard.index,
                    stage=stage,
                    frames_done=min(frames_done, n),
                    frames_total=n,
                    stage_done=done,
                    stage_total=total,
                    tokens=tokens,
                    seconds=round(now - start, 4),
                    stage_seconds=UNSET if stage_seconds is None else stage_seconds,
                )
            )

        return report

    # -- memory -----------------------------------------------------------------------------
    def memory_snapshot(self) -> ev.GpuMemory:
        if self.device is not None and self.device.type == "cuda":
            import torch

            free, total = torch.cuda.mem_get_info(self.device)
            return ev.GpuMemory(
                worker=self.n,
                job=self.job,
                kind="cuda",
                allocated=int(torch.cuda.memory_allocated(self.device)),
                reserved=int(torch.cuda.memory_reserved(self.device)),
                peak=int(torch.cuda.max_memory_allocated(self.device)),
                free=int(free),
                total=int(total),
            )
        import psutil

        vm = psutil.virtual_memory()
        rss = int(psutil.Process().memory_info().rss)
        return ev.GpuMemory(
            worker=self.n,
            job=self.job,
            kind="cpu",
            allocated=rss,
            reserved=rss,
            peak=max(_peak_rss(), rss),
            free=int(vm.available),
            total=int(vm.total),
        )

    def send_memory(self) -> None:
        with contextlib.suppress(Exception):  # telemetry must never kill the worker
            self.send(self.memory_snapshot())

    def clear_cache(self, reason: str) -> None:
        prev_state = self.state
        self.set_state(ev.WorkerState.CLEARING, reason=reason)
        before = self.memory_snapshot().reserved
        gc.collect()
        if self.device is not None and self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        else:
            _malloc_trim()
        after = self.memory_snapshot().reserved
        self.send(
            ev.CacheCleared(
                worker=self.n,
                job=self.job,
                reason=reason,
                bytes_freed=max(before - after, 0),
                reserved_before=before,
                reserved_after=after,
            )
        )
        self.set_state(prev_state if prev_state != ev.WorkerState.CLEARING else ev.WorkerState.IDLE)

    def _heartbeat_loop(self) -> None:
        last_memory = 0.0
        parent = self.cfg.parent_pid
        while True:
            if parent and os.getppid() != parent:
                leave(3)  # the orchestrator died (kill -9): exit, free the GPU
            now = time.time()
            self.send(
                ev.Heartbeat(
                    worker=self.n,
                    job=self.job,
                    state=self.state,
                    shard=self.shard,
                    since_progress=round(now - self.last_progress, 2),
                    pid=os.getpid(),
                )
            )
            if self.device is not None and now - last_memory >= self.cfg.settings.memory_every_s:
                last_memory = now
                self.send_memory()
            time.sleep(self.cfg.settings.heartbeat_s)


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
        return {
            "virus_frames": 0,
            "others_frames": 0,
            "histogram": (0,) * ev.HISTOGRAM_BINS,
            "top": (),
        }
    virus = probs[:, 1] > probs[:, 0]
    hist, _ = np.histogram(probs[:, 1], bins=ev.HISTOGRAM_BINS, range=(0.0, 1.0))
    best = np.argsort(-probs[:, 1], kind="stable")[:top]
    return {
        "virus_frames": int(virus.sum()),
        "others_frames": int((~virus).sum()),
        "histogram": tuple(hist.astype(int).tolist()),
        "top": tuple((frame_ids[i], float(probs[i, 1])) for i in best),
    }
