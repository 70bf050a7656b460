"""The manifest of a run starting now: its inputs with their checksums, its settings, its model
files' identities and the versions it runs with (compared with the manifest on disk to decide a
resume, run/rundir.py). Apart from ``run/manifest.py``, which only reads and writes it, so that
a reader of run directories (``report``) needs neither torch nor the models."""

from __future__ import annotations

import os
import platform
import sys
import time

import msgspec

from virnucpro_tui import __version__
from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.core.fasta import InputScan
from virnucpro_tui.models.identity import model_identities
from virnucpro_tui.pool.events import RunStatus
from virnucpro_tui.run.config import DEMO_NOTICE, RunConfig
from virnucpro_tui.run.manifest import FORMAT, InputEntry, Manifest, ModelIdentity, RunSettings


def input_entry(job: str, scan: InputScan, added: bool = False) -> InputEntry:
    path = scan.path
    return InputEntry(
        job=job,
        path=str(path.resolve()),
        sha256=sha256_file(path),  # the file as stored, compressed or not
        bytes=path.stat().st_size,
        records=scan.records,
        chunks=scan.chunks,
        added=added,
        format=scan.format.value,
        compression=scan.compression.value,
    )


def new_manifest(
    cfg: RunConfig, scans: list[InputScan], names: list[str], devices: list[str]
) -> Manifest:
    """The manifest of a run starting now (compared with the one on disk to decide a resume)."""
    engine = cfg.engine
    settings = RunSettings(
        chunk_length=cfg.chunk_length,
        shard_size=cfg.effective_shard_size,
        precision=engine.precision,
        esm_max_tokens=engine.esm_max_tokens,
        dnabert_max_tokens=engine.dnabert_max_tokens,
        dedup=cfg.dedup,
        features=cfg.features_format if cfg.save_features else None,
    )
    return Manifest(
        format=FORMAT,
        status=RunStatus.RUNNING,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        command=[str(a) for a in cfg.command],
        cwd=os.getcwd(),
        executable=sys.executable,
        inputs=[input_entry(n, s) for n, s in zip(names, scans, strict=False)],
        settings=settings,
        models=msgspec.convert(model_identities(cfg.models), dict[str, ModelIdentity]),
        demo=cfg.demo,
        notice=DEMO_NOTICE if cfg.demo else None,
        devices=devices,
        backend=cfg.backend,
        versions=_versions(),
        host=platform.node(),
    )


def _versions() -> dict[str, str | None]:
    import numpy
    import torch

    return {
        "virnucpro-tui": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "fair-esm": _dist_version("fair-esm"),
        "biopython": _dist_version("biopython"),
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
