"""Weight files as data: tensors or only their shapes, key and shape checks, and modules built
without random initialisation (docs/reliability.md#model-files-are-data-not-code).

``read_tensors`` loads a safetensors or torch file; ``read_shapes`` reads only what a check
needs (the safetensors header, or a memory-mapped weights-only torch load that touches no
tensor data). ``build_uninitialised`` constructs a module on the meta device with its
initialisers skipped, so a loader can give it real tensors with ``load_state_dict(assign=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.safe_load import SafeGlobal, first_line, torch_load_safely

Shape = tuple[int, ...]
Shapes = dict[str, Shape]
M = TypeVar("M", bound=nn.Module)
MAX_LAYERS, MAX_WIDTH = 1024, 1 << 17

# What the constructors of torch's layers (and fair-esm's) call to fill new parameters. The
# nn.init functions listed dispatch through torch-function modes; the others reach these
# in-place tensor methods, which do too.
_WEIGHT_FILLS = frozenset(
    {
        nn.init.uniform_,
        nn.init.normal_,
        nn.init.constant_,
        nn.init.kaiming_uniform_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
        torch.Tensor.fill_,
        torch.Tensor.zero_,
    }
)


class SkipWeightInit(TorchFunctionMode):
    """Within this mode (this thread only) new parameters keep whatever memory they get: the
    initialisers and in-place fills above return their tensor untouched. For constructing
    modules whose weights are loaded next; nothing global is patched."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Iterable[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _WEIGHT_FILLS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def build_uninitialised(factory: Callable[[], M]) -> M:
    """``factory()`` on the meta device without initialisers: no memory, no random numbers.
    (Initialising on the meta device would import torch's Python decompositions, ~1 s.)"""
    with torch.device("meta"), SkipWeightInit():
        return factory()


def shapes_of(module_or_state: nn.Module | Mapping[str, torch.Tensor]) -> Shapes:
    state = (
        module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    )
    return {key: tuple(value.shape) for key, value in state.items()}


def check_state(
    found: Mapping[str, Shape], expected: Mapping[str, Shape], source: Path, model: str
) -> None:
    """Refuse a state dict whose keys or shapes differ from the module's (one line)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = [f"missing {few(missing)}"] if missing else []
        parts += [f"unexpected {few(unexpected)}"] if unexpected else []
        raise ModelError(f"{source}: wrong key set for {model} ({'; '.join(parts)})")
    for key in sorted(found):
        if tuple(found[key]) != tuple(expected[key]):
            raise ModelError(
                f"{source}: {key} has shape {tuple(found[key])}, {model} expects "
                f"{tuple(expected[key])}"
            )


def bad_sizes(sizes: Mapping[str, object], layers_key: str) -> list[str]:
    """Config sizes that are not positive integers within bounds far above any ESM-2 or
    DNABERT-S (so a corrupt or hostile config cannot ask pre-flight to build a huge module)."""
    bad = [f"{k} {v!r}" for k, v in sizes.items() if type(v) is not int or not 0 < v <= MAX_WIDTH]
    layers = sizes.get(layers_key)
    if not bad and isinstance(layers, int) and layers > MAX_LAYERS:
        bad.append(f"{layers_key} {layers}")
    return bad


def few(keys: list[str], limit: int = 4) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


# --- reading files ---------------------------------------------------------------------------


def read_tensors(path: Path, extra_globals: Iterable[SafeGlobal] = ()) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or a torch state-dict file (memory-mapped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
            raise ModelError(
                f"{path}: not a readable safetensors file ({first_line(exc)})"
            ) from None
    return tensor_dict(path, torch_load_safely(path, extra_globals))


def read_shapes(path: Path) -> Shapes:
    """Tensor names and shapes of a weights file, without reading the tensor data."""
    if path.suffix != ".safetensors":
        return shapes_of(read_tensors(path))
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - as above
        raise ModelError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None


def tensor_dict(path: Path, data: Any) -> dict[str, torch.Tensor]:
    """``data`` as a mapping of names to tensors, else a ModelError naming the file."""
    if not isinstance(data, Mapping):
        raise ModelError(f"{path}: not a state dict (found {type(data).__name__})")
    others = sorted(str(k) for k, v in data.items() if not isinstance(v, torch.Tensor))
    if others:
        raise ModelError(f"{path}: holds objects other than tensors (under {few(others)})")
    return {str(k): v for k, v in data.items()}
