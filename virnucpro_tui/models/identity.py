"""Which model a run used: the SHA-256 of its files, as the run manifest records them and a
resume compares them (docs/reliability.md#model-identity).

A file's hash is cached in the user's cache directory under its real path, keyed by size,
modification time, change time and inode, so a 5.7 GB ESM-2 file is hashed once, not at every
run start. Loading a model never hashes anything."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.core.filemode import give_plain_file_mode
from virnucpro_tui.models.settings import ModelFiles

MODELS = ("esm", "dnabert", "classifier")
CACHE_FILE = "file-sha256.json"
# The files of a model directory that change its scores: weights, config, tokenizer.
MODEL_DIR_SUFFIXES = (".json", ".txt", ".bin", ".safetensors", ".model")
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")


def model_identities(files: ModelFiles) -> dict[str, dict[str, Any]]:
    """The manifest's ``models`` section: ``{"esm": ..., "dnabert": ..., "classifier": ...}``."""
    hashes = HashCache.default()
    out = {name: model_identity(Path(getattr(files, name)), hashes) for name in MODELS}
    hashes.save()
    return out


def model_identity(path: Path, hashes: HashCache | None = None) -> dict[str, Any]:
    """``{"path", "sha256"}`` for a model file; for a model directory also ``files``, the hash
    of each weights, config and tokenizer file in it, and ``sha256`` is its weights'."""
    hashes = hashes if hashes is not None else HashCache.default()
    if not path.is_dir():
        return {"path": str(path), "sha256": hashes.sha256(path) if path.is_file() else "missing"}
    from virnucpro_tui.models.dnabert import model_dir

    directory = model_dir(path)  # a Hugging Face cache repo resolves to its snapshot
    found = {
        f.name: hashes.sha256(f)
        for f in sorted(directory.iterdir())
        if f.is_file() and f.suffix in MODEL_DIR_SUFFIXES
    }
    weights = next((n for n in WEIGHT_NAMES if n in found), None)
    return {"path": str(path), "sha256": found[weights] if weights else "missing", "files": found}


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/virnucpro-tui, else ~/.cache/virnucpro-tui."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "virnucpro-tui"


class HashCache:
    """File hashes by real path, valid while (size, mtime_ns, ctime_ns, inode) are unchanged.
    One JSON file; written whole and renamed into place, so concurrent runs at worst lose an
    entry (then hash again). Entries of files that no longer exist are dropped on save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.changed = False
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                self.entries = {k: v for k, v in data.items() if isinstance(v, dict)}
        except (OSError, ValueError):
            pass  # no cache yet, or unreadable: start empty

    @classmethod
    def default(cls) -> HashCache:
        return cls(user_cache_dir() / CACHE_FILE)

    def sha256(self, file: Path) -> str:
        real = os.path.realpath(file)
        stat = os.stat(real)
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        entry = self.entries.get(real)
        if entry is not None and entry.get("stat") == key and isinstance(entry.get("sha256"), str):
            return str(entry["sha256"])
        digest = sha256_file(real)
        self.entries[real] = {"stat": key, "sha256": digest}
        self.changed = True
        return digest

    def save(self) -> None:
        """Write the cache if it changed; a cache that cannot be written is skipped quietly."""
        if not self.changed:
            return
        live = {k: v for k, v in self.entries.items() if os.path.exists(k)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            give_plain_file_mode(fd)
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(live, handle, indent=0, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            return
        self.changed = False
