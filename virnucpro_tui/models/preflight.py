"""Pre-flight: every model file is checked before any worker starts
(docs/reliability.md#pre-flight-every-model-file-before-any-worker).

Each file is read as data only (weights-only, memory-mapped torch loads, safetensors headers)
on the CPU, and checked the way its loader checks it: structure, tensor names and shapes,
config, tokenizer, the ESM-2 contact-regression file. No tensor data is read, except the
classifier's (a few MB), so a 5.7 GB ESM-2 checkpoint costs a fraction of a second. A file that
fails raises ModelError (exit 2) with one line naming the file and the problem."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from virnucpro_tui.models.classifier import ClassifierBundle, load_classifier
from virnucpro_tui.models.dnabert import check_dnabert
from virnucpro_tui.models.esm import check_esm
from virnucpro_tui.models.esm.fair import regression_path
from virnucpro_tui.models.esm.hf import TransformersEsm
from virnucpro_tui.models.settings import ModelFiles


@dataclass(frozen=True)
class ModelCheck:
    """One model that passed: where it is, its format, and the files its loader reads."""

    path: Path
    format: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class PreflightReport:
    esm: ModelCheck
    dnabert: ModelCheck
    classifier: ClassifierBundle  # loaded: small, and its chunk length is checked next
    seconds: float


def check_model_files(files: ModelFiles) -> PreflightReport:
    """Check the three models' files as their loaders would, reading no tensor data."""
    start = time.perf_counter()
    esm = check_esm(files.esm)
    if isinstance(esm, TransformersEsm):
        d = esm.directory
        esm_check = _check(d, "transformers", d / "config.json", d / "vocab.txt", *esm.weight_files)
    else:
        esm_check = _check(esm.path, "fair-esm", esm.path, regression_path(esm.path))
    del esm  # its tensors are memory-mapped views of the file: let the mapping go
    dnabert = check_dnabert(files.dnabert)
    dnabert_check = _check(
        dnabert.root,
        dnabert.weights.name,
        dnabert.root / "config.json",
        dnabert.root / "tokenizer.json",
        dnabert.weights,
    )
    classifier = load_classifier(files.classifier)
    return PreflightReport(esm_check, dnabert_check, classifier, time.perf_counter() - start)


def _check(path: Path, fmt: str, *files: Path) -> ModelCheck:
    return ModelCheck(path, fmt, tuple(f for f in files if f.is_file()))
