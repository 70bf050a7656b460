"""Loading torch files as data only: ``weights_only=True`` with an explicit allow-list, never
arbitrary pickle code (docs/reliability.md#model-files-are-data-not-code). Error messages name
the file and the problem; none passes on torch's advice to load a file unsafely."""

from __future__ import annotations

import argparse
import errno
import json
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

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

# torch's own messages for these errors suggest loading the file with weights_only=False.
_UNSAFE_ADVICE = re.compile(r"weights_only|arbitrary code|trust(ed)? (the )?source", re.IGNORECASE)
_WEIGHTS_UNPICKLER = re.compile(
    r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|Check the documentation|$)", re.DOTALL
)


# Globals of ordinary tensor pickles: not what a refusal should name when code is there too.
_DATA_GLOBALS = ("torch.", "collections.OrderedDict", "argparse.Namespace")


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
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            # a plain (non-torch) pickle: torch warns about its protocol before refusing it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            try:  # memory-mapped: workers on one host share the page cache of a 5.7 GB file
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = refused_global(str(exc)) or next(
            (g for g in pickle_globals(path) if not g.startswith(_DATA_GLOBALS)), None
        )
        if name is not None:
            raise RefusedGlobalError(path, name) from None
        raise ModelError(
            f"{path}: not a torch weights file, or it holds Python objects other than "
            f"tensors ({_unpickler_reason(exc)}); refusing to load it"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError) as exc:
        # torch's zip reader reports a file cut short before its directory as EINVAL
        detail = "incomplete zip archive" if _is_einval(exc) else first_line(exc)
        raise ModelError(f"{path}: corrupt or truncated model file ({detail})") from None


def _is_einval(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EINVAL


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


def pickle_globals(path: Path) -> list[str]:
    """Classes and functions a plain pickle file names, by a static scan (nothing runs): how a
    refused file that is not in torch's format is described. Best effort, [] when unsure."""
    found: list[str] = []
    tail: list[object] = []  # the values pushed last (strings, else None)
    memo: dict[int, object] = {}
    try:
        with path.open("rb") as handle:
            for op, arg, _pos in pickletools.genops(handle):
                if op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(tail) >= 2:
                    module, name = tail[-2], tail[-1]
                    if isinstance(module, str) and isinstance(name, str):
                        found.append(f"{module}.{name}")
                if op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                    memo[len(memo) if op.name == "MEMOIZE" else int(arg or 0)] = (
                        tail[-1] if tail else None
                    )
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    tail.append(memo.get(int(arg or 0)))
                else:
                    tail.append(arg if isinstance(arg, str) else None)
                del tail[:-2]
    except (ValueError, OSError, EOFError, pickle.UnpicklingError, TypeError):
        pass
    return found


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


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message, without torch's unsafe-loading advice."""
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    text = next((line for line in lines if line and not _UNSAFE_ADVICE.search(line)), "")
    text = text.split(". This is an internal miniz error")[0]
    return text or type(exc).__name__


def _unpickler_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, e.g. "Unsupported operand 100"."""
    match = _WEIGHTS_UNPICKLER.search(str(exc))
    reason = " ".join(match.group(1).split()) if match else ""
    if not reason or _UNSAFE_ADVICE.search(reason):
        return "the weights-only unpickler refused it"
    return f"the weights-only unpickler refused it: {reason}"
