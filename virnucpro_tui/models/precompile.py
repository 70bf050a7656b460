"""Layers compiled ahead of time and saved whole, so a warm start skips Dynamo's tracing.

A warm start with ``torch.compile`` still traces each compiled layer with Dynamo (fake tensors,
symbolic shapes) before the compile cache can answer, within a model's 4 to 5 s warm-up on an
H200 (docs/benchmarks.md#start-up-measured-2026-12-07-evening-one-h200).
``torch.compile(...).aot_compile`` saves the traced graph, its guards and Inductor's kernels in
one file; a later process loads that file and calls it
(docs/benchmarks.md#layers-compiled-ahead-of-time-warm-starts-on-the-cpu-2026-12-07-night).

:class:`PrecompiledForward` stands in for one layer class's ``forward``: every layer of the model
calls it with itself as the first argument (the weights are graph inputs, so one graph serves
all layers). Each graph variant (ESM-2: with and without a padding mask) is compiled at its
first call, saved as one ``*.aot`` file and loaded by later processes; guards pick the variant
for each call, and a call no saved variant accepts compiles a new one. Nothing here can fail a
run: a file that cannot be loaded (damaged, another torch, changed source) is deleted and
compiled again, and a graph that cannot be compiled ahead of time is compiled the usual way
(``torch.compile``); each is reported through ``report(message)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import re
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SUFFIX = ".aot"
REFUSED = "refused.txt"  # why this graph cannot be compiled ahead of time: later processes skip it

Report = Callable[[str], None]


class PrecompiledForward:
    """One layer class's ``forward``, compiled ahead of time into ``directory`` (one file per
    graph variant) or loaded from it. Call it as ``forward(layer, *args)``."""

    def __init__(self, forward: Callable[..., Any], directory: Path, report: Report) -> None:
        self.forward = forward
        self.directory = Path(directory)
        self.report = report
        self.variants: list[_Variant] = []  # loaded or compiled
        self.jit: Callable[..., Any] | None = None  # torch.compile, where AOT is refused
        self.loaded: int | None = None  # variants read from disk, once the first call read them
        _LIVE.add(self)

    def __call__(self, *args: Any) -> Any:
        if self.loaded is None:  # in the calls' context: guards compare the grad mode's state
            self._load_saved()
        if self.jit is not None:
            return self.jit(*args)
        for variant in self.variants:
            if variant.compiled.guard_check(*args):
                return variant.compiled(*args)
        return self._compile(args)(*args)

    def bind(self, module: torch.nn.Module) -> Callable[..., Any]:
        """``module.forward`` through this object (install with ``module.forward = ...``)."""
        return _Bound(self, module)

    def forget(self) -> None:
        """Drop what this process loaded or compiled (the cache was cleared under it)."""
        self.variants, self.jit, self.loaded = [], None, None

    def _load_saved(self) -> None:
        self.loaded = 0
        with contextlib.suppress(OSError):  # unwritable: saving reports it, the run goes on
            self.directory.mkdir(parents=True, exist_ok=True)
        refused = self._refused()
        if refused is not None:
            self._fall_back_to_jit(refused)
            return
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                variant = _load(path)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is compiled again
                self.report(
                    f"the precompiled layer {path} could not be used ({_first_line(exc)}); "
                    "it was deleted and the layer is compiled again"
                )
                path.unlink(missing_ok=True)
                continue
            self.variants.append(_Variant(path.name.split("-")[0], variant))
        self.loaded = len(self.variants)

    def _compile(self, args: tuple[Any, ...]) -> Callable[..., Any]:
        import torch._dynamo.config as dynamo_config

        try:
            # floats held by the modules (LayerNorm's eps) as constants: AOT cannot retrace;
            # torch 2.11 offers ``aot_compile`` only when asked to
            options: dict[str, Any] = {"specialize_float": True}
            if hasattr(dynamo_config, "enable_aot_compile"):
                options["enable_aot_compile"] = True
            with dynamo_config.patch(options):
                compiled: Any = torch.compile(self.forward, fullgraph=True, dynamic=True)
                variant = compiled.aot_compile((args, {}))
            variant.disable_guard_check()  # __call__ checks the guards once, to pick it
        except Exception as exc:  # noqa: BLE001 - any refusal falls back to torch.compile
            return self._refuse(exc)
        kind = _signature(args)
        self._save(variant, kind, sum(v.kind == kind for v in self.variants))
        self.variants.append(_Variant(kind, variant))
        return variant

    def _save(self, variant: Any, kind: str, same: int) -> None:
        """As ``<kind of arguments>-<n>.aot``: workers that compile the same graph at once
        write one file between them, not one each."""
        path = self.directory / f"{kind}-{same}{SUFFIX}"
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        try:
            variant.save_compiled_function(str(partial))
            os.replace(partial, path)
        except Exception as exc:  # noqa: BLE001 - the run goes on with it in memory
            partial.unlink(missing_ok=True)
            self.report(f"the precompiled layer could not be saved ({_first_line(exc)})")

    def _refuse(self, exc: Exception) -> Callable[..., Any]:
        reason = _first_line(exc)
        with contextlib.suppress(OSError):  # a later process then tries again
            (self.directory / REFUSED).write_text(f"{_fingerprint(self.forward)}\n{reason}\n")
        return self._fall_back_to_jit(reason)

    def _refused(self) -> str | None:
        """Why an earlier process could not compile this layer ahead of time, unless the
        layer's source changed since."""
        try:
            fingerprint, reason = (self.directory / REFUSED).read_text().split("\n", 1)
        except (OSError, ValueError):
            return None
        return reason.strip() if fingerprint == _fingerprint(self.forward) else None

    def _fall_back_to_jit(self, reason: str) -> Callable[..., Any]:
        self.report(
            f"the layer cannot be compiled ahead of time ({reason}); "
            "it is compiled in each process instead"
        )
        self.variants = []
        self.jit = torch.compile(self.forward, dynamic=True)
        return self.jit


@dataclass(frozen=True)
class _Variant:
    kind: str  # what its arguments were (:func:`_signature`): the saved file's name
    compiled: Any  # an AOTCompiledFunction


class _Bound:
    """``layer.forward`` as the shared compiled function called with the layer."""

    def __init__(self, precompiled: PrecompiledForward, module: torch.nn.Module) -> None:
        self.precompiled = precompiled
        self.module = weakref.ref(module)  # no cycle: the module holds this object

    def __call__(self, *args: Any) -> Any:
        module = self.module()
        assert module is not None
        return self.precompiled(module, *args)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # Dynamo pickles the layers' attributes with a graph's guards: not the compiled graphs
        return (_detached, ())


def _detached() -> None:
    return None


_LIVE: weakref.WeakSet[PrecompiledForward] = weakref.WeakSet()


def forget_all() -> None:
    """Every :class:`PrecompiledForward` drops what it holds (after the cache was cleared)."""
    for precompiled in list(_LIVE):
        precompiled.forget()


@dataclass(frozen=True)
class AheadOfTime:
    """Where one model's layers are saved compiled (one directory per model variant, inside
    the compile cache), and where messages about them go."""

    directory: Path
    report: Report


def variant_directory(cache: Path, variant: str) -> Path:
    """One model variant's directory (``compile_variant``: model, dtype, settings) in the cache."""
    return cache / "precompiled" / re.sub(r"[^A-Za-z0-9._+-]+", "_", variant)


def has_saved(directory: Path) -> bool:
    """Some graph of this layer is saved in ``directory``, or known not to compile ahead."""
    return (directory / REFUSED).exists() or any(directory.glob(f"*{SUFFIX}"))


def install(layers: torch.nn.ModuleList, ahead: AheadOfTime) -> PrecompiledForward:
    """Every layer's ``forward`` through one :class:`PrecompiledForward` (the layers must share
    a class: their weights differ, their graph does not)."""
    kinds = {type(layer) for layer in layers}
    if len(kinds) != 1:
        raise ValueError(
            f"layers of several classes cannot share a graph: {sorted(map(str, kinds))}"
        )
    precompiled = PrecompiledForward(next(iter(kinds)).forward, ahead.directory, ahead.report)
    for layer in layers:
        layer.forward = precompiled.bind(layer)
    return precompiled


def _load(path: Path) -> Any:
    from torch._guards import TracingContext, tracing

    # a trace's context to unpickle into: rebuilding an ImportSource (FlexAttention's guards)
    # installs a guard into the current trace, and loading has none
    with path.open("rb") as file, tracing(TracingContext(None)):
        variant: Any = torch.compiler.load_compiled_function(file)
    stale = _changed_sources(variant)
    if stale:
        raise RuntimeError(f"its source changed since it was compiled: {', '.join(stale)}")
    variant.disable_guard_check()
    return variant


def _changed_sources(variant: Any) -> list[str]:
    """Modules whose source differs from the one the graph was traced from."""
    changed = []
    for source in variant.source_info().inlined_sources:
        module = sys.modules.get(source.module)
        try:
            now = inspect.getsource(module) if module is not None else None
        except (OSError, TypeError):
            now = None
        if now != source.content:
            changed.append(source.module)
    return sorted(set(changed))


def _signature(args: tuple[Any, ...]) -> str:
    """What the arguments are, short of their sizes: the kind of graph they ask for."""
    parts = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            parts.append(f"{arg.dtype}:{arg.device.type}:{arg.dim()}:{arg.is_inference()}")
        else:
            parts.append(type(arg).__qualname__)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _fingerprint(forward: Callable[..., Any]) -> str:
    """The source of the module that defines ``forward``, hashed."""
    module = sys.modules.get(forward.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        source = ""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]
