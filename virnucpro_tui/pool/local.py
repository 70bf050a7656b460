"""The local backend: one worker process per slot, spawned fresh (``spawn`` start method) and
reached over its own duplex pipe (docs/architecture.md#the-pool-one-supervisor-two-transports).

A private pipe per worker, unlike a shared ``multiprocessing.Queue``, holds no lock that a
SIGKILLed worker could leave taken.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Sequence
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from virnucpro_tui.pool.devices import DeviceSlot, resolve_devices
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.transport import Command, WorkerMessage
from virnucpro_tui.pool.worker_config import WorkerConfig, worker_environment
from virnucpro_tui.pool.worker_process import STOP_SIGNALS, worker_main

_ENV_LOCK = threading.Lock()


class ProcessTransport:
    """A worker process and its end of the pipe."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    ready = True  # a process starts at once
    host_lost = False

    def send(self, command: Command) -> bool:
        try:
            self.conn.send(command)
        except (BrokenPipeError, OSError):
            return False
        return True

    def receive(self) -> list[WorkerMessage]:
        messages: list[WorkerMessage] = []
        if self.conn.closed:
            return messages
        try:
            while self.conn.poll():
                messages.append(self.conn.recv())
        except (EOFError, OSError):
            self.conn.close()
        return messages

    def exit_reason(self) -> str | None:
        if self.process.is_alive():
            return None
        return f"exited with {describe_exit(self.process.exitcode)}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(self.process.pid or 0, signal.SIGKILL)
        self.process.join(timeout=5)

    def close(self) -> None:
        self.conn.close()
        if not self.process.is_alive():
            self.process.join(timeout=5)


class LocalBackend:
    """Worker processes on this machine, one per GPU (or CPU worker)."""

    name = "local"

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")

    def now(self) -> float:
        return time.monotonic()

    def resolve_slots(self, spec: str) -> list[DeviceSlot]:
        return resolve_devices(spec)

    def open(self, slots: Sequence[DeviceSlot], layout: RunLayout) -> list[str]:
        return []

    def spawn(self, config: WorkerConfig) -> ProcessTransport:
        config.parent_pid = os.getpid()
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        env = worker_environment(config)
        with _ENV_LOCK:  # the child must see its CUDA settings before it imports torch
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            # A Ctrl-C in the terminal (or a SIGTERM to the job) reaches the whole process group.
            # A worker ignores them once it runs, but not while its interpreter starts: it starts
            # with them blocked. (The resource tracker, started by the first spawn, would unblock
            # them: start it first.)
            resource_tracker.ensure_running()
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                process = self.ctx.Process(
                    target=worker_main,
                    args=(config, child_conn),
                    name=f"virnucpro-worker-{config.slot.worker}",
                )
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child_conn.close()
        return ProcessTransport(process, parent_conn)

    def wait(self, transports: Sequence[ProcessTransport], timeout: float) -> None:
        conns = [t.conn for t in transports if not t.conn.closed]
        if conns:
            wait(conns, timeout=timeout)
        else:
            time.sleep(min(timeout, 0.05))


def describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
