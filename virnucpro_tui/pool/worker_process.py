"""The entry points of a local worker process (``multiprocessing`` spawn): its output to its log,
the stop signals left to the orchestrator, and a ``Worker`` on its own duplex pipe; or a
standby that imports first and becomes a worker when its config comes (pool/standby.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from virnucpro_tui.pool.transport import WorkerMessage
from virnucpro_tui.pool.worker import Worker, leave, redirect_output
from virnucpro_tui.pool.worker_config import WorkerConfig, worker_environment

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # ignored by workers; the orchestrator handles them


def worker_main(cfg: WorkerConfig, conn: Connection, standby_note: str = "") -> None:
    """Process entry point (spawn)."""
    redirect_output(cfg.log_path)
    os.environ.update(worker_environment(cfg))
    _leave_stop_signals_to_the_orchestrator()
    print(
        f"worker {cfg.slot.worker} generation {cfg.generation} pid {os.getpid()} on {cfg.slot.label}"
        + standby_note,
        flush=True,
    )
    code = Worker(cfg, _pipe_sender(conn)).run_process(conn)
    sys.stdout.flush()
    leave(code)


def standby_main(conn: Connection) -> None:
    """Entry point of a standby (pool/standby.py): import what a worker needs, then wait for
    its config and become that worker; exit if the pipe closes first. It holds nothing yet, so
    a Ctrl-C or SIGTERM ends it (the pool then starts that worker afresh)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # default handlers: they end it
    devnull = os.open(os.devnull, os.O_RDWR)  # no log yet: the config names it
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    started = time.monotonic()
    import torch  # noqa: F401  (no CUDA call: CUDA reads this process's settings when first used)

    import virnucpro_tui.models.engine  # noqa: F401

    what = "torch and the compiler" if _import_compiler() else "torch"
    imported = time.monotonic() - started
    try:
        cfg = conn.recv()
    except (EOFError, OSError, KeyboardInterrupt):
        leave(0)
    waited = time.monotonic() - started - imported
    note = f" (a standby: imported {what} in {imported:.1f} s, then waited {waited:.1f} s)"
    worker_main(cfg, conn, note)


def _import_compiler() -> bool:
    """On a GPU slot (the engine compiles there), import what the first ``torch.compile`` would:
    Dynamo, Inductor and FlexAttention take seconds to import, more without a bytecode cache.
    Importing them initialises no CUDA. True when imported. (Importing Dynamo sets
    ``TORCHINDUCTOR_CACHE_DIR`` to torch's ``/tmp`` default, which the engine's compile cache
    ignores: models/compile_cache.py.)"""
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return False
    import torch._dynamo  # noqa: F401
    import torch._inductor.compile_fx  # noqa: F401
    import torch.nn.attention.flex_attention  # noqa: F401

    import virnucpro_tui.models.fast  # noqa: F401

    with contextlib.suppress(ImportError):  # Triton hashes its own files for its cache key
        from torch._inductor.runtime.triton_compat import triton_key

        triton_key()  # once per process (0.8 s of a warm H100 start), touching no GPU
    return True


def _leave_stop_signals_to_the_orchestrator() -> None:
    """The orchestrator decides when we stop: a Ctrl-C, or a SIGTERM sent to the whole process
    group (systemd, SLURM), reaches it too and it finishes or abandons our shard. If it dies
    instead, the heartbeat thread (or a standby's pipe) notices and we exit."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the pool until here


def _pipe_sender(conn: Connection) -> Callable[[WorkerMessage], None]:
    def send(message: WorkerMessage) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            leave(3)  # orchestrator gone: never linger as an orphan

    return send
