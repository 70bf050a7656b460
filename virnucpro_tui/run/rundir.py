"""The run directory: lock, manifest, shard results, logs, events and final outputs.

A rerun with the same ``--out`` resumes (finished shards are skipped). A rerun whose inputs or
settings differ is refused with the differences named, unless ``--restart`` is given.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from virnucpro_tui.core.atomic import atomic_write_text
from virnucpro_tui.core.features import FEATURE_FILES
from virnucpro_tui.core.outputs import (
    HIGHESTSCORE_FILE,
    JOB_REPORT_FILES,
    PREDICTION_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
)
from virnucpro_tui.errors import RunDirError, output_dir_problem
from virnucpro_tui.pool.layout import EVENTS, MANIFEST, RunLayout
from virnucpro_tui.run.manifest import Manifest, manifest_differences

PROVENANCE = "provenance.json"
NOTICE = "NOTICE.txt"
OUR_FILES = (
    PREDICTION_FILE,
    HIGHESTSCORE_FILE,
    SUMMARY_FILE,
    PROVENANCE,
    NOTICE,
    *FEATURE_FILES,
    *JOB_REPORT_FILES,  # the report (docs/outputs.md)
    REPORT_FILE,
)


def job_names(paths: list[Path]) -> list[str]:
    """Safe, unique directory names for the inputs (never built from untrusted record ids)."""
    from virnucpro_tui.core.fasta import input_stem

    names: list[str] = []
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", input_stem(p)).strip("._") or "input"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


@dataclass(frozen=True)
class LockRecord:
    """Who holds a run directory: written into ``.lock`` by the run, read by ``attach``.

    ``started`` is the process's start time (``psutil``'s create_time), so a pid reused by
    another process after the run died is not taken for the run. Older runs wrote
    ``pid N on HOST since DATE``; that form is still read (without a start time)."""

    pid: int
    host: str
    since: str = ""
    started: float | None = None

    @classmethod
    def of_this_process(cls) -> LockRecord:
        import psutil

        return cls(
            os.getpid(),
            socket.gethostname(),
            time.strftime("%Y-%m-%d %H:%M:%S"),
            psutil.Process().create_time(),
        )

    def text(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def parse(cls, text: str) -> LockRecord | None:
        with contextlib.suppress(ValueError, TypeError):
            data = json.loads(text)
            if isinstance(data, dict) and isinstance(data.get("pid"), int):
                started = data.get("started")
                return cls(
                    data["pid"],
                    str(data.get("host", "")),
                    str(data.get("since", "")),
                    float(started) if isinstance(started, int | float) else None,
                )
        old = re.fullmatch(r"pid (\d+) on (\S+)(?: since (.*))?", text.strip())
        return cls(int(old[1]), old[2], old[3] or "") if old else None

    @classmethod
    def read(cls, path: Path) -> LockRecord | None:
        try:
            return cls.parse(path.read_text(errors="replace"))
        except OSError:
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def alive(self) -> bool | None:
        """Whether the run's process is alive: None when it runs on another host."""
        if self.host and self.host != socket.gethostname():
            return None
        import psutil

        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            started = process.create_time()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True
        return self.started is None or abs(started - self.started) < 1.0


@dataclass
class RunDir:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.layout = RunLayout(self.root)
        self._lock_fh: IO[str] | None = None

    @property
    def shards(self) -> Path:
        return self.layout.shards

    @property
    def events(self) -> Path:
        return self.layout.events

    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest

    def job_dir(self, job: str, single: bool) -> Path:
        return self.layout.job_dir(job, single)

    # -- lock ---------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Create the directory and take its lock; a second run on it is refused."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.layout.lock, "a+")  # noqa: SIM115 - held for the life of the run
        except OSError as exc:
            raise RunDirError(
                f"{self.root}: cannot use the output directory "
                f"({output_dir_problem(self.root, exc)}); --out names a directory, created if missing"
            ) from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            record = LockRecord.parse(fh.read())
            owner = record.describe() if record else "another process"
            fh.close()
            raise RunDirError(
                f"{self.root}: in use by another virnucpro-tui run ({owner}); "
                "wait for it to finish, watch it with `virnucpro-tui attach`, or use another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(LockRecord.of_this_process().text())
        fh.flush()
        self._lock_fh = fh
        self.check_writable()

    def check_writable(self) -> None:
        probe = self.root / f".write-test-{os.getpid()}"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(
                f"{self.root}: output directory is not writable ({exc.strerror or exc})"
            ) from None

    def release(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- manifest -----------------------------------------------------------------------------
    def read_manifest(self) -> Manifest | None:
        try:
            text = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunDirError(
                f"{self.manifest_path}: unreadable manifest ({exc}); use --restart to start over"
            ) from None
        return Manifest.from_json(text, self.manifest_path)

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write_text(self.manifest_path, manifest.to_json())

    def check_resume(self, fresh: Manifest, restart: bool, job_dirs: list[Path]) -> Manifest | None:
        """The previous manifest if this run may resume it; refuse a different run unless restarting."""
        old = self.read_manifest()
        if restart:
            self.clear(job_dirs)
            return None
        if old is None:
            leftovers = [d / PREDICTION_FILE for d in job_dirs if (d / PREDICTION_FILE).exists()]
            if leftovers:
                raise RunDirError(
                    f"{self.root}: holds results not made by a virnucpro-tui run "
                    f"({leftovers[0].name}); use --restart to overwrite or choose another --out"
                )
            return None
        diffs = manifest_differences(old, fresh)
        if diffs:
            raise RunDirError(
                f"{self.root}: holds a different run ({'; '.join(diffs)}); "
                "use --restart to discard it, or choose another --out"
            )
        return old

    def remove_partial_files(self, job_dirs: list[Path]) -> None:
        """Delete the temporary files of writes that a killed run left behind (we hold the lock,
        so nobody else is writing them). They never have a final name, so nothing reads them."""
        for d in {self.root, *job_dirs}:
            for name in (*OUR_FILES, MANIFEST):
                for leftover in d.glob(f".{name}.*.partial"):
                    leftover.unlink(missing_ok=True)
        for leftover in self.shards.glob("*/.*.partial"):
            leftover.unlink(missing_ok=True)

    def clear(self, job_dirs: list[Path]) -> None:
        """Remove what an earlier run wrote here (and only that)."""
        shutil.rmtree(self.shards, ignore_errors=True)
        for name in (MANIFEST, EVENTS):
            (self.root / name).unlink(missing_ok=True)
        for rotated in self.root.glob(f"{EVENTS}.*"):
            rotated.unlink(missing_ok=True)
        for d in {self.root, *job_dirs}:
            for name in OUR_FILES if d in job_dirs else (REPORT_FILE,):
                (d / name).unlink(missing_ok=True)
