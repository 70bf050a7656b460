"""Errors the user sees as one clear line. Exit codes follow DESIGN §5."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class VirnucproError(Exception):
    """An expected failure with a message meant for the user (no traceback)."""

    exit_code = EXIT_ERROR


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
