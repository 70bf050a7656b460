"""The VirNucPro MLP classifier (docs/architecture.md#the-scientific-contract): the published architecture, a loader for the
published whole-module pickles (allow-listed, no pickle code runs), plain state dicts and
safetensors files, chunk-length checks and class probabilities."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.safe_load import (
    RefusedGlobalError,
    first_line,
    has_demo_marker,
    torch_load_safely,
    unsafe_globals,
)

LABELS = ("others", "virus")
KNOWN_LENGTHS = (300, 500)
WRAPPER_KEYS = ("state_dict", "model_state_dict")
REQUIRED_KEYS = (
    "hidden_layer.weight",
    "hidden_layer.bias",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "output_layer.weight",
    "output_layer.bias",
)
# Modules a pickled MLPClassifier may reference. Unpickling only creates them (no __init__).
SAFE_MODULE_CLASSES = (
    nn.Linear,
    nn.BatchNorm1d,
    nn.Dropout,
    nn.ReLU,
    nn.Identity,
    nn.Sequential,
    nn.ModuleList,
)
_CLASS_NAME = re.compile(r"^[A-Za-z_][\w.]*\.MLPClassifier$")
_MAX_RETRIES = 4


class MLPClassifier(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Dropout(0.5) -> Linear, as published. Always in eval mode."""

    def __init__(self, input_dim: int = 3328, hidden_dim: int = 512, num_class: int = 2) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)
        self.eval()

    def train(self, mode: bool = True) -> MLPClassifier:
        return super().train(False)  # inference only: dropout and batch statistics stay off

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hidden_layer(x)
        x = self.bn1(x)
        x = F.relu(x)
        x = self.dropout(x)
        return self.output_layer(x)


@dataclass
class ClassifierBundle:
    model: MLPClassifier
    input_dim: int
    chunk_length: int | None
    source: Path
    format: str  # "pickle" | "state_dict" | "safetensors"
    demo: bool


def load_classifier(path: str | Path) -> ClassifierBundle:
    """Load a classifier from a published pickle, a state dict or a safetensors file (CPU, fp32)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: classifier file not found")
    meta: dict[str, Any] = {}
    if path.suffix == ".safetensors":
        state, meta, fmt = *_read_safetensors(path), "safetensors"
    else:
        state, meta, fmt = _read_torch_file(path)
    model = _build(path, state)
    return ClassifierBundle(
        model=model,
        input_dim=model.hidden_layer.in_features,
        chunk_length=_meta_length(path, meta) or length_from_name(path),
        source=path,
        format=fmt,
        demo=_truthy(meta.get("demo")) or has_demo_marker(path),
    )


def length_from_name(path: str | Path) -> int | None:
    """300 or 500 from a leading number in the file name (``300_model.pth``), else None."""
    match = re.match(r"^(\d+)(?!\d)", Path(path).name)
    if match and int(match.group(1)) in KNOWN_LENGTHS:
        return int(match.group(1))
    return None


def check_chunk_length(bundle: ClassifierBundle, length: int, force: bool = False) -> str | None:
    """Refuse a classifier trained for another chunk length unless forced.

    Returns a warning line when the length is unknown or forced, None when it matches."""
    trained = bundle.chunk_length
    if trained is None:
        return (
            f"{bundle.source}: the classifier's chunk length is unknown (not in its name or "
            f"metadata); assuming it fits --length {length}"
        )
    if trained == length:
        return None
    message = f"{bundle.source}: the classifier was trained for {trained}-bp chunks but --length is {length}"
    if not force:
        raise ModelError(f"{message}; use the matching model or --force-model-length")
    return f"{message}; used anyway (--force-model-length)"


# float64 makes the scores independent of batch size and thread count (see predict_proba).
SCORING_DTYPE = torch.float64


def predict_proba(bundle: ClassifierBundle, features: torch.Tensor) -> torch.Tensor:
    """Softmax over [others, virus] for features [N, input_dim], float32, on the features' device.

    The MLP runs in float64 and rounds to float32 at the end, so a frame's scores do not depend
    on the batch it came in, the number of CPU threads or the BLAS kernel chosen: a rerun, a
    resume on another worker count, or the classifier applied to saved features gives the same
    bytes."""
    if features.ndim != 2 or features.shape[1] != bundle.input_dim:
        raise ModelError(
            f"{bundle.source}: the classifier expects {bundle.input_dim} features per frame, "
            f"got shape {tuple(features.shape)}"
        )
    model = bundle.model
    weight = model.hidden_layer.weight
    if weight.device != features.device or weight.dtype != SCORING_DTYPE:
        model.to(device=features.device, dtype=SCORING_DTYPE)
    model.eval()
    with torch.inference_mode():
        logits = model(features.to(torch.float32).to(SCORING_DTYPE))
        return torch.softmax(logits, dim=1).to(torch.float32)


# --- reading files ---------------------------------------------------------------------------


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = dict(handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    return state, meta


def _read_torch_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    obj = _load_pickle(path)
    if isinstance(obj, MLPClassifier):
        return _module_tensors(obj), {}, "pickle"
    if isinstance(obj, dict):
        meta = {k: obj[k] for k in ("chunk_length", "demo") if k in obj}
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key], meta, "state_dict"
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors, meta, "state_dict"
    raise ModelError(
        f"{path}: not a VirNucPro classifier (expected a pickled MLPClassifier, a state dict or "
        f"safetensors; found {type(obj).__name__})"
    )


def _load_pickle(path: Path) -> Any:
    """weights_only load that maps any ``<module>.MLPClassifier`` global to our own class."""
    names = {n for n in unsafe_globals(path) or () if _CLASS_NAME.match(n)}
    for _ in range(_MAX_RETRIES):
        allowed = [*SAFE_MODULE_CLASSES, *((MLPClassifier, n) for n in sorted(names))]
        try:
            return torch_load_safely(path, extra_globals=allowed)
        except RefusedGlobalError as exc:  # legacy files cannot be scanned ahead
            if not _CLASS_NAME.match(exc.name) or exc.name in names:
                raise
            names.add(exc.name)
    raise ModelError(f"{path}: refused to load: too many classifier classes in one file")


def _module_tensors(module: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers read straight from a module's stored dicts, so pickles from older
    torch versions (extra or missing private attributes) work."""
    attrs = vars(module)
    out: dict[str, torch.Tensor] = {}
    for store in ("_parameters", "_buffers"):
        for name, tensor in (attrs.get(store) or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor.detach()
    for name, child in (attrs.get("_modules") or {}).items():
        if child is not None:
            out.update(_module_tensors(child, f"{prefix}{name}."))
    return out


# --- building the model ----------------------------------------------------------------------


def _build(path: Path, state: dict[str, Any]) -> MLPClassifier:
    state = {_strip_module_prefix(k): v for k, v in state.items()}
    missing = [k for k in REQUIRED_KEYS if not isinstance(state.get(k), torch.Tensor)]
    if missing:
        raise ModelError(f"{path}: not a VirNucPro classifier (missing {', '.join(missing)})")
    hidden, input_dim = _shape2(path, state["hidden_layer.weight"])
    num_class, hidden_out = _shape2(path, state["output_layer.weight"])
    if num_class != len(LABELS) or hidden_out != hidden:
        raise ModelError(
            f"{path}: classifier shapes do not fit: hidden {hidden}->{hidden_out}, "
            f"{num_class} classes (expected 2: others, virus)"
        )
    state.setdefault("bn1.num_batches_tracked", torch.tensor(0, dtype=torch.long))
    model = MLPClassifier(input_dim, hidden, num_class)
    try:
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("dropout.")})
    except RuntimeError as exc:
        raise ModelError(f"{path}: classifier weights do not fit ({first_line(exc)})") from None
    return model.float().eval()


def _shape2(path: Path, tensor: torch.Tensor) -> tuple[int, int]:
    if tensor.ndim != 2:
        raise ModelError(f"{path}: classifier weight has shape {tuple(tensor.shape)}, expected 2-D")
    return int(tensor.shape[0]), int(tensor.shape[1])


def _strip_module_prefix(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _meta_length(path: Path, meta: dict[str, Any]) -> int | None:
    value = meta.get("chunk_length")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ModelError(f"{path}: bad chunk_length metadata {value!r}") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value) if value is not None else False
