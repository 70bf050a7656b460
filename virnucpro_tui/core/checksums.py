"""SHA-256 of files, read in blocks (inputs in the manifest, model files, shard results)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str], block: int = 4 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
