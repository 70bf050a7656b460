"""The modes a plain ``open()`` or ``mkdir()`` gives under the user's umask (docs/outputs.md#file-modes).

``tempfile.mkstemp`` creates files ``0600`` and ``mkdtemp`` directories ``0700`` whatever the
umask; files written through them are given these modes, so a group that may read the output
directory may read the results (0644 under umask 022, 0640 under 027).

The umask is read from ``/proc/self/status`` (Linux): ``os.umask`` can only be read by setting
it, which races with threads creating files. Where ``/proc`` does not say, the umask read once at
import (before any thread of ours runs) stands.
"""

from __future__ import annotations

import contextlib
import os

PROC_STATUS = "/proc/self/status"


def _umask_from_proc() -> int | None:
    try:
        with open(PROC_STATUS, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _umask_by_setting() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_from_proc = _umask_from_proc()
_AT_IMPORT: int = _umask_by_setting() if _from_proc is None else _from_proc


def current_umask() -> int:
    """The process's umask now (from /proc), else the one it had at import."""
    mask = _umask_from_proc()
    return _AT_IMPORT if mask is None else mask


def plain_file_mode() -> int:
    return 0o666 & ~current_umask()


def plain_dir_mode() -> int:
    return 0o777 & ~current_umask()


def give_plain_file_mode(fd: int) -> None:
    """Give a file made by ``mkstemp`` (0600) the mode ``open()`` would have given it. A
    filesystem that refuses (some FUSE mounts) keeps the private mode: the write still succeeds."""
    with contextlib.suppress(OSError):
        os.fchmod(fd, plain_file_mode())
