"""Loading torch files as data only: ``weights_only=True`` with an explicit allow-list, never
arbitrary pickle code. Also streamed SHA-256 checksums of model files."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.errors import ModelError

# A global allowed by name: the class itself, or (replacement class, "module.qualname").
SafeGlobal = Any

ALWAYS_ALLOWED: tuple[SafeGlobal, ...] = (argparse.Namespace,)

_REFUSED_PATTERNS = (
    re.compile(r"GLOBAL (\S+) was not an allowed global"),
    re.compile(r"unsupported GLOBAL (\S+) whose module"),
    re.compile(r"unrecognized function (.+?)(?: which belongs|$)"),
    re.compile(r"allowlisted via `add_safe_globals`,? but got (.+)$"),
)

_checksum_cache: dict[tuple[str, int, int], str] = {}


class RefusedGlobalError(ModelError):
    """A file that references code (a pickle global) outside the allow-list."""

    def __init__(self, path: Path, name: str) -> None:
        super().__init__(
            f"{path}: refused to load: the file contains code object '{name}' that is not "
            "allow-listed (model files are data, not code)"
        )
        self.name = name


def refused_global(message: str) -> str | None:
    """The name of the global a weights-only unpickler refused, parsed from its message."""
    for pattern in _REFUSED_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1).strip().rstrip(".")
    return None


def torch_load_safely(
    path: str | os.PathLike[str], extra_globals: Iterable[SafeGlobal] = ()
) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True`` and an explicit allow-list.

    Raises ModelError for a missing, refused (code-carrying) or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    allowed = [*ALWAYS_ALLOWED, *extra_globals]
    try:
        with torch.serialization.safe_globals(allowed):
            try:  # memory-mapped: workers on one host share the page cache of a 5.7 GB file
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = refused_global(str(exc))
        if name is not None:
            raise RefusedGlobalError(path, name) from None
        raise ModelError(f"{path}: not a readable torch file ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError) as exc:
        raise ModelError(f"{path}: corrupt or truncated model file ({_first_line(exc)})") from None


def unsafe_globals(path: str | os.PathLike[str]) -> list[str] | None:
    """Globals in a torch zip checkpoint that are not allowed by default (static scan, nothing
    runs). None when the file cannot be scanned (legacy format, old torch)."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is None:
        return None
    try:
        return sorted(scan(str(path)))
    except Exception:
        return None


def model_checksum(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model file, or for a directory of the files in it (relative name and hash of
    each, sorted). File hashes are cached per process by path, size and mtime."""
    path = Path(path)
    if not path.is_dir():
        return _cached_sha256(path)
    lines = [
        f"{f.relative_to(path).as_posix()}:{_cached_sha256(f)}\n"
        for f in sorted(path.rglob("*"))
        if f.is_file()
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _checksum_cache:
        _checksum_cache[key] = sha256_file(path)
    return _checksum_cache[key]


def has_demo_marker(path: str | os.PathLike[str]) -> bool:
    """True when a ``demo.json`` holding {"demo": true} sits next to the file or directory
    (or inside the directory): the model has random weights, not biological ones."""
    path = Path(path)
    candidates = [path.parent / "demo.json"]
    if path.is_dir():
        candidates.insert(0, path / "demo.json")
    for marker in candidates:
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("demo") is True:
            return True
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
