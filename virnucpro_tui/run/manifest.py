"""``manifest.json``, typed: what a run directory holds (its inputs, settings, models, versions)
and how its run ended (docs/outputs.md#the-run-directory).

``Manifest`` reads every manifest written since the first release (``format``
``virnucpro-tui-run/1``; unknown keys are ignored, so a later minor addition still reads) and
writes the same JSON, key for key, in the same order. A manifest of a later format is refused
with the version named, not misread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from virnucpro_tui.errors import RunDirError
from virnucpro_tui.pool.events import RunStatus

FORMAT = "virnucpro-tui-run/1"  # the version: readers accept this one and refuse later ones
FORMAT_PREFIX = "virnucpro-tui-run/"


class InputEntry(msgspec.Struct):
    """One input: its job, where it was, and its checksum (a changed input is a different run)."""

    job: str
    path: str
    sha256: str
    bytes: int
    records: int
    chunks: int
    added: bool = False  # added from the dashboard while the run went on
    # FASTA or FASTQ, and its compression (docs/outputs.md#inputs); absent in older runs
    format: str | UnsetType = UNSET
    compression: str | UnsetType = UNSET


class RunSettings(msgspec.Struct):
    """The settings a resume must share with the run it resumes."""

    chunk_length: int
    shard_size: int
    precision: str
    esm_max_tokens: int | None
    dnabert_max_tokens: int | None
    dedup: bool
    features: str | None


class ModelIdentity(msgspec.Struct, omit_defaults=True):
    """A model file's path and checksum; for a model directory, each file's too."""

    path: str
    sha256: str
    files: dict[str, str] | None = None


class Manifest(msgspec.Struct, omit_defaults=True):
    format: str
    status: RunStatus
    created: str
    command: list[str]
    cwd: str  # where the command ran: its paths may be relative
    executable: str
    inputs: list[InputEntry]
    settings: RunSettings
    models: dict[str, ModelIdentity]
    demo: bool
    notice: str | None
    devices: list[str]
    backend: str
    versions: dict[str, str | None]
    host: str
    resumable: bool | UnsetType = UNSET  # from here on: written when the run ends
    error: str | UnsetType = UNSET
    finished: str | UnsetType = UNSET

    def entry(self, job: str) -> InputEntry | None:
        return next((i for i in self.inputs if i.job == job), None)

    def ended(self, status: RunStatus, resumable: bool, error: str | None) -> None:
        self.status, self.resumable = status, resumable
        if error is not None:
            self.error = error
        self.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def to_json(self) -> str:
        return json.dumps(msgspec.to_builtins(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str, path: Path) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _unreadable(path, exc) from None
        found = data.get("format") if isinstance(data, dict) else None
        if isinstance(found, str) and found.startswith(FORMAT_PREFIX) and found != FORMAT:
            raise RunDirError(
                f"{path}: written by another virnucpro-tui ({found}; this one reads {FORMAT}); "
                "resume it with that version, or use --restart to start over"
            )
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> RunDirError:
    return RunDirError(f"{path}: unreadable manifest ({exc}); use --restart to start over")


def manifest_differences(old: Manifest, new: Manifest) -> list[str]:
    """Human-readable reasons why ``new`` is not a resume of ``old``."""
    diffs = []
    old_inputs = {i.job: i for i in old.inputs}
    for item in new.inputs:
        prev = old_inputs.get(item.job)
        if prev is None:
            diffs.append(f"input {item.path} is new")
        elif prev.sha256 != item.sha256:
            diffs.append(f"input {item.path} changed")
    new_jobs = {i.job for i in new.inputs}
    missing = [i.path for i in old.inputs if i.job not in new_jobs and not i.added]
    if missing:
        diffs.append(f"input {missing[0]} is no longer given")
    old_settings: dict[str, Any] = msgspec.to_builtins(old.settings)
    for key, value in msgspec.to_builtins(new.settings).items():
        if old_settings.get(key) != value:
            diffs.append(f"{key} was {old_settings.get(key)!r}, now {value!r}")
    for name, identity in new.models.items():
        changed = _changed_model_file(old.models.get(name), identity)
        if changed:
            diffs.append(f"the {name} model file changed ({changed})")
    return diffs


def _changed_model_file(old: ModelIdentity | None, new: ModelIdentity) -> str | None:
    """The path of a model file whose checksum differs between two manifests, or None."""
    if old is None or old.sha256 != new.sha256:
        return new.path
    if old.files is None or new.files is None:  # a manifest from before directories were listed
        return None
    for name in sorted(set(old.files) | set(new.files)):
        if old.files.get(name) != new.files.get(name):
            return str(Path(new.path) / name)
    return None
