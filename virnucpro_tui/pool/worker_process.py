"""The entry point of a local worker process (``multiprocessing`` spawn): its output to its log,
the stop signals left to the orchestrator, and a ``Worker`` on its own duplex pipe."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection

from virnucpro_tui.pool.transport import WorkerMessage
from virnucpro_tui.pool.worker import Worker, leave, redirect_output
from virnucpro_tui.pool.worker_config import WorkerConfig, worker_environment

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # ignored by workers; the orchestrator handles them


def worker_main(cfg: WorkerConfig, conn: Connection) -> None:
    """Process entry point (spawn)."""
    redirect_output(cfg.log_path)
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
    leave(code)


def _pipe_sender(conn: Connection) -> Callable[[WorkerMessage], None]:
    def send(message: WorkerMessage) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            leave(3)  # orchestrator gone: never linger as an orphan

    return send
