"""Where the real model files are (README: Running on real data): explicit paths, then a TOML config file, then
the standard caches. Only resolves paths; loads nothing."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virnucpro_tui.errors import ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the tomli backport, a dependency there (pyproject.toml)
    import tomli as tomllib

ESM_FILE = "esm2_t36_3B_UR50D.pt"
ESM_HF_REPO = "facebook/esm2_t36_3B_UR50D"
DNABERT_REPO = "zhihan1996/DNABERT-S"
CONFIG_ENV = "VIRNUCPRO_TUI_CONFIG"
CONFIG_KEYS = ("esm", "dnabert", "classifier_300", "classifier_500")
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
DOWNLOAD_COMMAND = "virnucpro-tui models download"
DOWNLOAD_HINTS = {
    "esm": (
        "run `{command} esm`, or download {esm_urls} into {torch_hub}/checkpoints/ "
        "(or pass --esm PATH)"
    ),
    "dnabert": (
        "run `{command} dnabert`, or `huggingface-cli download zhihan1996/DNABERT-S` "
        "(or pass --dnabert PATH)"
    ),
    "classifier": (
        "run `{command} classifier`, or get {name} from https://github.com/Li-Jing-1997/VirNucPro "
        "into the current directory or {cache}/ (or pass --classifier PATH)"
    ),
}
LABELS = {"esm": "ESM-2 3B", "dnabert": "DNABERT-S", "classifier": "classifier"}


@dataclass(frozen=True)
class ModelPaths:
    esm: Path
    dnabert: Path
    classifier: Path


@dataclass
class _Search:
    """Candidates tried for one model, in order."""

    kind: str
    tried: list[str] = field(default_factory=list)
    found: Path | None = None


def resolve_model_paths(
    length: int,
    esm: str | os.PathLike[str] | None = None,
    dnabert: str | os.PathLike[str] | None = None,
    classifier: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
) -> ModelPaths:
    """The three model paths for a run with ``length``-bp chunks.

    Order: explicit paths, then the config file, then the standard caches. Raises ModelError
    naming every path tried (and what to download) when something is missing."""
    explicit = {"esm": esm, "dnabert": dnabert, "classifier": classifier}
    settings, config_path = _read_config(config)
    config_key = {"esm": "esm", "dnabert": "dnabert", "classifier": f"classifier_{length}"}
    searches = {}
    for kind in ("esm", "dnabert", "classifier"):
        search = _Search(kind)
        given = explicit[kind]
        if given is not None:
            search.found = _explicit(kind, Path(given).expanduser())
        elif config_key[kind] in settings:
            search.found = _configured(
                kind, settings[config_key[kind]], config_path, config_key[kind]
            )
        else:
            _search_caches(search, length)
        searches[kind] = search
    found = {kind: s.found for kind, s in searches.items() if s.found is not None}
    if len(found) < len(searches):
        missing = [s for s in searches.values() if s.found is None]
        raise ModelError(_missing_message(missing, length, config_path))
    return ModelPaths(found["esm"], found["dnabert"], found["classifier"])


# --- explicit and configured paths -----------------------------------------------------------


def _explicit(kind: str, path: Path) -> Path:
    if not path.exists():
        raise ModelError(f"{path}: {LABELS[kind]} model not found (given with --{kind})")
    return _normalise(kind, path)


def _configured(kind: str, value: Any, config_path: Path | None, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ModelError(f"{config_path}: '{key}' must be a path string")
    path = Path(value).expanduser()
    if not path.is_absolute() and config_path is not None:
        path = config_path.parent / path
    if not path.exists():
        raise ModelError(
            f"{path}: {LABELS[kind]} model not found (set as '{key}' in {config_path})"
        )
    return _normalise(kind, path)


def _normalise(kind: str, path: Path) -> Path:
    """DNABERT-S may be named by its directory or any file inside it."""
    if kind == "dnabert" and path.is_file():
        return path.parent
    return path


def config_candidates(config: str | os.PathLike[str] | None = None) -> list[tuple[Path, bool]]:
    """Config files in lookup order, each with whether it must exist (given by the user)."""
    if config is not None:
        return [(Path(config).expanduser(), True)]
    if os.environ.get(CONFIG_ENV):
        return [(Path(os.environ[CONFIG_ENV]).expanduser(), True)]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return [(base / "virnucpro-tui" / "models.toml", False)]


def _read_config(config: str | os.PathLike[str] | None) -> tuple[dict[str, Any], Path | None]:
    for path, required in config_candidates(config):
        if not path.is_file():
            if required:
                raise ModelError(f"{path}: model config file not found")
            continue
        return _parse_toml(path), path
    return {}, None


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model config ({exc})") from None
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ModelError(
            f"{path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(CONFIG_KEYS)}"
        )
    return data


# --- the standard caches ---------------------------------------------------------------------


def torch_hub_dir() -> Path:
    """torch.hub's directory: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, ~/.cache/torch/hub."""
    home = os.environ.get("TORCH_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    return _cache_home() / "torch" / "hub"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return _cache_home() / "huggingface" / "hub"


def classifier_cache() -> Path:
    return _cache_home() / "virnucpro-tui"


def _cache_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def _search_caches(search: _Search, length: int) -> None:
    if search.kind == "esm":
        candidate = torch_hub_dir() / "checkpoints" / ESM_FILE
        search.tried.append(str(candidate))
        if candidate.is_file():
            search.found = candidate
            return
        search.found = hf_snapshot(ESM_HF_REPO, search.tried, need_tokenizer=False)
    elif search.kind == "dnabert":
        search.found = hf_snapshot(DNABERT_REPO, search.tried, need_tokenizer=True)
    else:
        for folder in (Path.cwd(), classifier_cache()):
            candidate = folder / f"{length}_model.pth"
            search.tried.append(str(candidate))
            if candidate.is_file():
                search.found = candidate
                return


def hf_snapshot(repo: str, tried: list[str], need_tokenizer: bool) -> Path | None:
    """The snapshot of ``repo`` in the hub cache: the one ``refs/main`` names if complete, else
    the newest complete one (weights, and tokenizer.json when asked)."""
    root = hf_hub_cache() / f"models--{repo.replace('/', '--')}"
    snapshots = root / "snapshots"
    ref = root / "refs" / "main"
    if ref.is_file():
        named = snapshots / ref.read_text().strip()
        tried.append(str(named))
        if _complete(named, need_tokenizer):
            return named
    others = []
    if snapshots.is_dir():
        others = sorted(p for p in snapshots.iterdir() if str(p) not in tried)
    tried.extend([str(p) for p in others] or [str(snapshots)])
    complete = [p for p in others if _complete(p, need_tokenizer)]
    return max(complete, key=lambda p: p.stat().st_mtime) if complete else None


def _complete(snapshot: Path, need_tokenizer: bool) -> bool:
    if not snapshot.is_dir() or not (snapshot / "config.json").is_file():
        return False
    if need_tokenizer and not (snapshot / "tokenizer.json").is_file():
        return False
    return any((snapshot / name).is_file() for name in HF_WEIGHTS)


# --- the error -------------------------------------------------------------------------------


def _missing_message(missing: list[_Search], length: int, config_path: Path | None) -> str:
    from virnucpro_tui.models.esm_urls import fair_esm_urls

    names = ", ".join(LABELS[s.kind] for s in missing)
    lines = [
        f"model files not found: {names}",
        f"get them with `{DOWNLOAD_COMMAND} {' '.join(s.kind for s in missing)}` "
        "(it places them where a run looks)",
    ]
    if config_path is None:
        where = config_candidates()[0][0]
        lines.append(f"(no model config file; you can list paths in {where})")
    for search in missing:
        lines.append(f"{LABELS[search.kind]}: tried")
        lines.extend(f"  {path}" for path in search.tried)
        hint = DOWNLOAD_HINTS[search.kind].format(
            command=DOWNLOAD_COMMAND,
            esm_urls=" and ".join(fair_esm_urls()) if search.kind == "esm" else "",
            torch_hub=torch_hub_dir(),
            name=f"{length}_model.pth",
            cache=classifier_cache(),
        )
        lines.append(f"  -> {hint}")
    return "\n".join(lines)
