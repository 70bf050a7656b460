"""A model's layers compiled ahead of time in a process of their own: on a cold cache, ESM-2's
while the engine compiles DNABERT-S (two compilations side by side instead of one after the
other), or both models' while the engine already runs them uncompiled
(``EngineSettings.compile_beside``).

The process builds one layer of the checkpoint's shape with random weights (the graph does not
depend on their values) and the engine's settings, and runs the engine's warm-up batches through
it, so that the layer's graphs are saved (models/precompile.py) where the engine's next call
loads them. If it fails or runs too long, the engine compiles them itself, as it would without
it, and says why. It ends with the process that started it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from virnucpro_tui.models.settings import EngineSettings

WAIT_S = 900.0  # longer than any cold compile seen (ESM-2 3B: 10 to 13 s on an H200)


@dataclasses.dataclass
class SideCompile:
    process: subprocess.Popen[bytes]
    log: Path
    started: float = dataclasses.field(default_factory=time.perf_counter)
    ended: float | None = None  # when ``done`` or ``wait`` first saw the process ended

    def done(self) -> bool:
        """The process has ended (saved the layers, or failed)."""
        ended = self.process.poll() is not None
        if ended and self.ended is None:
            self.ended = time.perf_counter()
        return ended

    def seconds(self) -> float:
        """From its start to its end as seen here (to now while it runs)."""
        return (self.ended or time.perf_counter()) - self.started

    def wait(self, timeout: float = WAIT_S) -> str | None:
        """None once the layers are saved; else why not (the engine then compiles them)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"it ran past {timeout:.0f} s"
        self.done()
        if code == 0:
            return None
        lines = (
            self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        )
        return f"it ended with exit code {code}: {lines[-1] if lines else 'no message'}"


@dataclasses.dataclass(frozen=True)
class Target:
    """What and where: the model (``esm`` or ``dnabert``), the device and the dtype it runs in
    there, the compile cache and the directory its layers are saved in (``AheadOfTime``), the
    warm-up batches' rows."""

    model: str
    device: torch.device
    dtype: torch.dtype
    cache: Path
    ahead: Path
    rows: int


def start(path: Path, settings: EngineSettings, target: Target) -> SideCompile:
    """Start compiling the layers of the model at ``path`` as the engine's own warm-up would."""
    ahead = target.ahead
    spec = {
        "model": target.model,
        "path": str(path),
        "device": str(target.device),
        "dtype": str(target.dtype).removeprefix("torch."),
        "settings": {k: _plain(v) for k, v in dataclasses.asdict(settings).items()},
        "cache": str(target.cache),
        "ahead": str(ahead),
        "rows": target.rows,
    }
    ahead.mkdir(parents=True, exist_ok=True)
    log = ahead / "side-compile.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "virnucpro_tui.models.side_compile", json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return SideCompile(process, log)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def stub_esm(path: Path, dtype: torch.dtype, device: torch.device) -> Any:
    """An ``EsmBundle`` of one layer of the checkpoint's shape, with random weights."""
    from virnucpro_tui.models.esm import tokens
    from virnucpro_tui.models.esm.encoder import uninitialised_encoder
    from virnucpro_tui.models.esm.load import EsmBundle, check_esm

    shape = dataclasses.replace(check_esm(path).shape, num_layers=1)
    encoder = uninitialised_encoder(shape).to_empty(device=device).to(dtype)
    with torch.no_grad():
        for tensor in [*encoder.parameters(), *encoder.buffers()]:
            if tensor.is_floating_point():
                tensor.normal_(0, 0.02)
    encoder.eval().requires_grad_(False)
    return EsmBundle(encoder, tokens.esm_alphabet(), 1, shape.embed_dim, path, "stub", False)


def stub_dnabert(path: Path, dtype: torch.dtype, device: torch.device) -> Any:
    """A ``DnabertBundle`` of one layer of the checkpoint's shape, with random weights."""
    from virnucpro_tui.models.dnabert import DnabertBundle, check_dnabert, uninitialised_model

    files = check_dnabert(path)
    config = dataclasses.replace(files.config, num_hidden_layers=1)
    model = uninitialised_model(config, files.with_pooler).to_empty(device=device).to(dtype)
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.normal_(0, 0.02)
    model.eval().requires_grad_(False)
    return DnabertBundle(model, files.tokenizer, config, files.root)


def main(spec: dict[str, Any]) -> None:
    from virnucpro_tui.models import compile_cache
    from virnucpro_tui.models.fast import accelerate_as_set
    from virnucpro_tui.models.precompile import AheadOfTime
    from virnucpro_tui.models.warmup import warm_up

    _end_with_parent()
    settings = EngineSettings(**spec["settings"])
    device = torch.device(spec["device"])
    compile_cache.configure(Path(spec["cache"]))
    model, dtype = spec["model"], getattr(torch, spec["dtype"])
    stub = stub_esm if model == "esm" else stub_dnabert
    bundle = stub(Path(spec["path"]), dtype, device)
    said: list[str] = []
    accelerate_as_set(model, bundle, True, settings, AheadOfTime(Path(spec["ahead"]), said.append))
    warm_up(model, bundle, spec["rows"], device)
    if said:  # refused, or not saved: the engine hears of it when it compiles
        raise SystemExit(said[-1])


def _end_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
