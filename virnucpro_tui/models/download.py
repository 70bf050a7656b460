"""``models download``: the published models, fetched, verified and placed where ``models locate``
looks (docs/models.md#downloading-the-models).

Sources: ESM-2 3B and its contact-regression file from the URLs fair-esm itself downloads;
DNABERT-S from the Hugging Face hub at a pinned commit (only the files the loader reads, never
its remote code); the two classifiers from the published VirNucPro repository, at a pinned commit.

Placement: by default the standard caches (torch hub checkpoints, the Hugging Face hub cache in
its own layout, ``~/.cache/virnucpro-tui``); with ``--dest DIR`` everything goes to DIR, with a
``models.toml`` that ``run --config`` (or the default config, when we may write it) reads.
Checksums: the classifiers' git blob ids at the pinned commit, the hub's ETags (sha256 of LFS
files, git blob ids of small ones) and URL hash prefixes are verified; the other files (ESM-2,
whose server publishes no checksum) get their sha256 recorded in ``virnucpro-models.json`` on
first download and are verified against it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virnucpro_tui.core.atomic import atomic_write_text
from virnucpro_tui.models import locate
from virnucpro_tui.models.esm_urls import ESM_MODEL, fair_esm_urls
from virnucpro_tui.models.transfer import (
    Checksum,
    ChecksumMismatch,
    Digests,
    DownloadError,
    TransferProgress,
    checksum_from_etag,
    checksum_from_url,
    fetch,
    file_digests,
    link,
)

MODELS = ("esm", "dnabert", "classifier")
DNABERT_REPO = locate.DNABERT_REPO
# The head of zhihan1996/DNABERT-S (commit "Fix error loading model with AutoModel (#1)").
DNABERT_REVISION = "2efd650282ec5d5ab377c787c76ea56b723f6b7c"
DNABERT_FILES = ("config.json", "tokenizer.json", "pytorch_model.bin")  # what load_dnabert reads
DNABERT_DEST_DIR = "DNABERT-S"
VIRNUCPRO_REPO = "Li-Jing-1997/VirNucPro"
VIRNUCPRO_COMMIT = "0b7e6f1f1c5972ce30aa1ced5977890406d3efe2"
CLASSIFIER_LENGTHS = (300, 500)
# The classifiers' git blob ids in VIRNUCPRO_REPO at VIRNUCPRO_COMMIT (``git ls-tree``): a
# download, and a file already present, is verified against them (docs/models.md#transfers-
# checksums-and-placement). Tests point this table at their own files.
CLASSIFIER_BLOB_IDS: dict[str, str] = {
    "300_model.pth": "a0b5b85e7c1e44f00cde146d091beb82b2c8e855",
    "500_model.pth": "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d",
}
MANIFEST_NAME = "virnucpro-models.json"
DEST_CONFIG_NAME = "models.toml"
MIRROR_ENV = "VIRNUCPRO_TUI_MIRROR"
RETRY_DELAY_S = 2.0  # first pause before retrying a dropped transfer (grows per retry)
CONFIG_MARKER = "# Written by `virnucpro-tui models download`; it may rewrite this file."


# --- sources ------------------------------------------------------------------------------------


def classifier_url(length: int) -> str:
    return f"https://github.com/{VIRNUCPRO_REPO}/raw/{VIRNUCPRO_COMMIT}/{length}_model.pth"


def classifier_checksum(name: str) -> Checksum:
    """The git blob id the pinned VirNucPro commit holds for classifier ``name``."""
    return Checksum(
        "git-sha1",
        CLASSIFIER_BLOB_IDS[name],
        f"the git blob id of {name} in {VIRNUCPRO_REPO} at commit {VIRNUCPRO_COMMIT[:12]}",
    )


def mirrored(url: str, mirror: str | None) -> str:
    """``https://host/path`` served by a mirror that keeps the host/path layout."""
    if not mirror:
        return url
    return f"{mirror.rstrip('/')}/{url.split('://', 1)[-1]}"


def hub_endpoint() -> str | None:
    """$HF_ENDPOINT, read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT") or None


def offline_reason(offline: bool) -> str | None:
    if offline:
        return "--offline"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    return None


# --- what goes where ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where each model's files go, and where the manifest lives."""

    root: Path
    esm_dir: Path
    dnabert_dir: Path
    classifier_dir: Path
    hub_repo: Path | None  # models--zhihan1996--DNABERT-S, when DNABERT-S goes to the hub cache
    dest: Path | None

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME


def layout_for(dest: Path | None) -> Layout:
    if dest is not None:
        dest = dest.expanduser().resolve()
        return Layout(dest, dest, dest / DNABERT_DEST_DIR, dest, None, dest)
    hub_repo = locate.hf_hub_cache() / f"models--{DNABERT_REPO.replace('/', '--')}"
    return Layout(
        root=locate.classifier_cache(),
        esm_dir=locate.torch_hub_dir() / "checkpoints",
        dnabert_dir=hub_repo / "snapshots" / DNABERT_REVISION,
        classifier_dir=locate.classifier_cache(),
        hub_repo=hub_repo,
        dest=None,
    )


@dataclass(frozen=True)
class PlannedFile:
    model: str  # esm, dnabert or classifier
    name: str
    target: Path  # the path a run reads
    url: str | None = None  # plain HTTP source; None for a hub file
    hub_file: str | None = None  # the file's name in the hub repository


def plan(models: Sequence[str], layout: Layout) -> list[PlannedFile]:
    """The files of ``models``, smallest first."""
    files: list[PlannedFile] = []
    if "classifier" in models:
        for length in CLASSIFIER_LENGTHS:
            name = f"{length}_model.pth"
            files.append(
                PlannedFile(
                    "classifier", name, layout.classifier_dir / name, classifier_url(length)
                )
            )
    if "dnabert" in models:
        for name in DNABERT_FILES:
            files.append(PlannedFile("dnabert", name, layout.dnabert_dir / name, hub_file=name))
    if "esm" in models:
        for url in fair_esm_urls():
            name = url.rsplit("/", 1)[-1]
            files.append(PlannedFile("esm", name, layout.esm_dir / name, url))
    return files


# --- the manifest of recorded checksums ---------------------------------------------------------


@dataclass
class Manifest:
    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            entries = data["files"]
            if not isinstance(entries, dict):
                raise TypeError("'files' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DownloadError(
                f"{path}: unreadable download manifest ({exc}); move it away and rerun"
            ) from None
        return cls(path, entries)

    def key(self, target: Path) -> str:
        try:
            return str(target.relative_to(self.path.parent))
        except ValueError:
            return str(target)

    def checksum(self, target: Path) -> Checksum | None:
        sha256 = self.entries.get(self.key(target), {}).get("sha256")
        if not isinstance(sha256, str):
            return None
        return Checksum(
            "sha256", sha256, f"the sha256 recorded at its first download (in {self.path})"
        )

    def record(self, item: PlannedFile, digests: Digests, source: str, verified_by: str) -> None:
        self.entries[self.key(item.target)] = {
            "model": item.model,
            "source": source,
            "sha256": digests.sha256,
            "size": digests.size,
            "verified_by": verified_by,
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save(self) -> None:
        text = json.dumps({"version": 1, "files": self.entries}, indent=2, sort_keys=True)
        atomic_write_text(self.path, text + "\n")


# --- the download ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    item: PlannedFile
    status: str  # downloaded, resumed, present or missing
    detail: str
    size: int | None = None


@dataclass
class DownloadReport:
    layout: Layout
    outcomes: list[FileOutcome]
    offline: str | None
    configs: list[Path] = field(default_factory=list)
    config_hint: str | None = None

    @property
    def missing(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "missing"]


@dataclass
class _Context:
    layout: Layout
    manifest: Manifest
    progress: TransferProgress
    offline: str | None
    mirror: str | None
    retry_delay_s: float


def download_models(
    models: Sequence[str],
    dest: Path | None = None,
    *,
    offline: bool = False,
    progress: TransferProgress | None = None,
    mirror: str | None = None,
    retry_delay_s: float | None = None,
) -> DownloadReport:
    """Fetch (or, offline, check) the files of ``models``; raise on the first failure."""
    from virnucpro_tui.models.transfer import NoProgress

    layout = layout_for(dest)
    ctx = _Context(
        layout,
        Manifest.load(layout.manifest),
        progress or NoProgress(),
        offline_reason(offline),
        mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None,
        RETRY_DELAY_S if retry_delay_s is None else retry_delay_s,
    )
    outcomes = []
    try:
        for item in plan(models, layout):
            outcomes.append(_process(item, ctx))
    finally:
        if ctx.manifest.entries:
            ctx.manifest.save()
    report = DownloadReport(layout, outcomes, ctx.offline)
    if layout.dest is not None:
        report.configs, report.config_hint = write_configs(layout)
    return report


def _process(item: PlannedFile, ctx: _Context) -> FileOutcome:
    if item.hub_file is not None and ctx.layout.hub_repo is not None:
        return _process_hub_cache(item, ctx.layout.hub_repo, ctx)
    published = _published_checksum(item)
    url, size = item.url, None
    if item.hub_file is not None and ctx.offline is None:
        meta = hub_metadata(item.hub_file)
        url, size = meta.location, meta.size
        published = checksum_from_etag(meta.etag, "the hub's ETag")
    expected = published or ctx.manifest.checksum(item.target)
    source = item.url or f"{DNABERT_REPO}@{DNABERT_REVISION}/{item.hub_file}"
    if item.target.is_file():
        return _present(item, item.target, expected, source, ctx)
    if ctx.offline is not None or url is None:
        return _missing(item, ctx)
    result = fetch(
        mirrored(url, ctx.mirror) if item.hub_file is None else url,
        item.target,
        task=item.name,
        checksum=expected,
        size=size,
        progress=ctx.progress,
        retry_delay_s=ctx.retry_delay_s,
        source_id=f"{source} {expected.value}" if item.hub_file and expected else None,
    )
    return _fetched(item, result.digests, result.resumed_from, expected, source, ctx)


def _published_checksum(item: PlannedFile) -> Checksum | None:
    """What a plain-HTTP file is verified against before any recorded sha256."""
    if item.model == "classifier":
        return classifier_checksum(item.name)
    return checksum_from_url(item.url) if item.url else None


def _process_hub_cache(item: PlannedFile, hub_repo: Path, ctx: _Context) -> FileOutcome:
    """DNABERT-S in the hub cache's own layout: blobs/<etag>, snapshots/<commit>/<file> -> blob."""
    assert item.hub_file is not None
    source = f"{DNABERT_REPO}@{DNABERT_REVISION}/{item.hub_file}"
    if item.target.is_file():
        blob = item.target.resolve()
        expected = checksum_from_etag(blob.name, "the hub's ETag (the blob's name)")
        return _present(item, blob, expected, source, ctx)
    if ctx.offline is not None:
        return _missing(item, ctx)
    meta = hub_metadata(item.hub_file)
    expected = checksum_from_etag(meta.etag, "the hub's ETag")
    if expected is None or meta.etag is None:
        raise DownloadError(f"{item.name}: the hub sent no usable ETag ({meta.etag!r})")
    blob = hub_repo / "blobs" / meta.etag.strip('"')
    if blob.is_file():
        outcome = _present(item, blob, expected, source, ctx)
    else:
        result = fetch(
            meta.location,
            blob,
            task=item.name,
            checksum=expected,
            size=meta.size,
            progress=ctx.progress,
            retry_delay_s=ctx.retry_delay_s,
            source_id=f"{source} {expected.value}",  # the CDN URL may be signed per request
        )
        outcome = _fetched(item, result.digests, result.resumed_from, expected, source, ctx)
    link(item.target, blob)
    return outcome


def _present(
    item: PlannedFile, path: Path, expected: Checksum | None, source: str, ctx: _Context
) -> FileOutcome:
    digests = file_digests(path, f"verify {item.name}", ctx.progress)
    if expected is not None and not expected.matches(digests):
        raise ChecksumMismatch(
            f"{path}: checksum mismatch: {expected.algorithm} {expected.actual(digests)}, but "
            f"{expected.source} says {expected.value}; delete it and rerun "
            "`virnucpro-tui models download` to fetch it again"
        )
    ctx.manifest.record(item, digests, source, expected.source if expected else "recorded")
    detail = (
        f"verified against {expected.source}"
        if expected
        else f"no checksum to verify against; sha256 {digests.sha256[:16]}… recorded now"
    )
    return FileOutcome(item, "present", detail, digests.size)


def _fetched(
    item: PlannedFile,
    digests: Digests,
    resumed_from: int,
    expected: Checksum | None,
    source: str,
    ctx: _Context,
) -> FileOutcome:
    ctx.manifest.record(item, digests, source, expected.source if expected else "recorded")
    detail = (
        f"verified against {expected.source}"
        if expected
        else f"sha256 {digests.sha256[:16]}… recorded in {ctx.manifest.path.name}"
    )
    status = "resumed" if resumed_from else "downloaded"
    return FileOutcome(item, status, detail, digests.size)


def _missing(item: PlannedFile, ctx: _Context) -> FileOutcome:
    return FileOutcome(item, "missing", f"not in {item.target.parent} ({ctx.offline})")


# --- the hub ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    location: str
    etag: str | None
    size: int | None
    commit: str | None


def hub_metadata(filename: str) -> HubFile:
    """The hub's HEAD answer for one file of DNABERT-S at the pinned commit."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(DNABERT_REPO, filename, revision=DNABERT_REVISION, endpoint=hub_endpoint())
    try:
        meta = get_hf_file_metadata(url)
    except Exception as exc:  # noqa: BLE001 - httpx and hub errors: one line for the user
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DownloadError(
            f"{filename}: cannot reach the Hugging Face hub for {DNABERT_REPO} ({detail}); "
            "rerun the same command to retry"
        ) from None
    if meta.commit_hash and meta.commit_hash != DNABERT_REVISION:
        raise DownloadError(
            f"{filename}: the hub answered with commit {meta.commit_hash}, not the pinned "
            f"{DNABERT_REVISION}"
        )
    return HubFile(meta.location, meta.etag, meta.size, meta.commit_hash)


# --- config files for --dest --------------------------------------------------------------------


def config_entries(layout: Layout) -> dict[str, Path]:
    """The config keys (``models locate``'s) of the models present in ``layout``."""
    candidates = {
        "esm": layout.esm_dir / f"{ESM_MODEL}.pt",
        "dnabert": layout.dnabert_dir,
        **{f"classifier_{n}": layout.classifier_dir / f"{n}_model.pth" for n in CLASSIFIER_LENGTHS},
    }
    present = {k: p for k, p in candidates.items() if k != "dnabert" and p.is_file()}
    if all((layout.dnabert_dir / name).is_file() for name in DNABERT_FILES):
        present["dnabert"] = layout.dnabert_dir
    return {k: present[k] for k in locate.CONFIG_KEYS if k in present}


def config_text(entries: dict[str, Path]) -> str:
    lines = [CONFIG_MARKER]
    lines += [f"{key} = {json.dumps(str(path))}" for key, path in entries.items()]
    return "\n".join(lines) + "\n"


def write_configs(layout: Layout) -> tuple[list[Path], str | None]:
    """``DIR/models.toml``, and the user's default config when absent or written by us."""
    assert layout.dest is not None
    entries = config_entries(layout)
    if not entries:
        return [], None
    text = config_text(entries)
    own = layout.dest / DEST_CONFIG_NAME
    atomic_write_text(own, text)
    written = [own]
    user = locate.config_candidates()[0][0]
    if _ours_or_absent(user):
        atomic_write_text(user, text)
        written.append(user)
        return written, None
    return written, f"{user} exists and was left alone: run with --config {own}"


def _ours_or_absent(path: Path) -> bool:
    if not path.exists():
        return True
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return path.read_text().startswith(CONFIG_MARKER)
    return False
