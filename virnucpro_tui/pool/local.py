"""The local backend: one worker process per slot, spawned fresh (``spawn`` start method) and
reached over its own duplex pipe (docs/architecture.md#the-pool-one-supervisor-two-transports).

A private pipe per worker, unlike a shared ``multiprocessing.Queue``, holds no lock that a
SIGKILLed worker could leave taken.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from virnucpro_tui.pool.devices import DeviceSlot, resolve_devices
from virnucpro_tui.pool.layout import RunLayout
from virnucpro_tui.pool.standby import Standby, Standbys
from virnucpro_tui.pool.transport import Command, WorkerMessage
from virnucpro_tui.pool.worker_config import WorkerConfig, worker_environment
from virnucpro_tui.pool.worker_process import STOP_SIGNALS, standby_main, worker_main

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
        self.standbys = Standbys(self._start_standby)

    def now(self) -> float:
        return time.monotonic()

    def resolve_slots(self, spec: str) -> list[DeviceSlot]:
        return resolve_devices(spec)

    def open(self, slots: Sequence[DeviceSlot], layout: RunLayout) -> list[str]:
        return []

    def prestart(self, environments: list[dict[str, str]]) -> None:
        """Start one worker interpreter per environment now (pool/standby.py)."""
        if environments and not len(self.standbys):
            # before multiprocessing's own exit handler, which would wait for them forever
            atexit.register(self.release)
        self.standbys.start(environments)

    def release(self) -> None:
        """End the standbys no worker took."""
        self.standbys.close()
        atexit.unregister(self.release)

    def spawn(self, config: WorkerConfig) -> ProcessTransport:
        config.parent_pid = os.getpid()
        standby = self.standbys.take(worker_environment(config))
        if standby is not None:
            try:
                standby.conn.send(config)
                return ProcessTransport(standby.process, standby.conn)
            except (BrokenPipeError, OSError):
                standby.close()  # it died between the check and the send: start afresh
        name = f"virnucpro-worker-{config.slot.worker}"
        process, conn = self._start(name, worker_environment(config), worker_main, config)
        return ProcessTransport(process, conn)

    def _start_standby(self, environment: dict[str, str]) -> Standby:
        process, conn = self._start("virnucpro-standby", environment, standby_main)
        return Standby(process, conn, environment)

    def _start(
        self, name: str, env: dict[str, str], target: Callable[..., None], *args: object
    ) -> tuple[BaseProcess, Connection]:
        """A process running ``target(*args, conn)`` with ``env`` set from its first instruction
        (a worker must see its CUDA settings before it imports torch)."""
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        with _ENV_LOCK:
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            # A Ctrl-C in the terminal (or a SIGTERM to the job) reaches the whole process group.
            # A worker ignores them once it runs, but not while its interpreter starts: it starts
            # with them blocked. (The resource tracker, started by the first spawn, would unblock
            # them: start it first.)
            resource_tracker.ensure_running()
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                process = self.ctx.Process(target=target, args=(*args, child_conn), name=name)
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child_conn.close()
        return process, parent_conn

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
