"""Errors the user sees as one clear line. Exit codes: see the README and docs/reliability.md."""

from __future__ import annotations

import errno
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class VirnucproError(Exception):
    """An expected failure with a message meant for the user (no traceback)."""

    exit_code = EXIT_ERROR
    resumable = True  # a run stopped by it continues when the same command is run again


class InputError(VirnucproError):
    """Bad input or usage: a missing, empty or malformed file, a bad option."""

    exit_code = EXIT_USAGE


class ModelError(VirnucproError):
    """A model file is missing, unsafe, or does not fit the run."""

    exit_code = EXIT_USAGE


class RunDirError(VirnucproError):
    """The run directory cannot be used (locked, different settings, unwritable)."""

    exit_code = EXIT_USAGE


class WorkerFailure(VirnucproError):
    """Workers kept failing past the restart limit."""

    exit_code = EXIT_ERROR


class ModelLoadFailure(WorkerFailure):
    """A worker could not load models that passed the pre-flight checks (out of memory, a
    device error, damaged tensor data): running the same command again fails the same way."""

    resumable = False


class DiskFullError(VirnucproError):
    """A write failed because the disk (or the user's quota) is full; the run can be resumed."""

    exit_code = EXIT_ERROR


def disk_full_error(path: object, doing: str) -> DiskFullError:
    """The one-line message for a full disk: the path, the OS's words, and that it resumes."""
    return DiskFullError(
        f"{path}: No space left on device ({doing}); the run stopped and is resumable: "
        "free some space, then rerun the same command"
    )


def is_disk_full(exc: BaseException) -> bool:
    """True for the OSErrors of a full disk (ENOSPC) or an exhausted quota (EDQUOT)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS


def output_dir_problem(path: Path, exc: OSError) -> str:
    """Why ``path`` cannot be an output directory, in words: a regular file where it, or a
    directory above it, should be is named (``mkdir`` says only 'File exists' or 'Not a
    directory')."""
    for candidate in (path, *path.parents):
        if candidate.exists() and not candidate.is_dir():
            if candidate == path:
                return "it is a file, not a directory"
            return f"{candidate} is a file, not a directory"
        if candidate.exists():
            break
    return str(exc.strerror or exc)
