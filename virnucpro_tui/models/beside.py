"""The processes beside an engine that compile its models' layers ahead of time
(models/side_compile.py), and what the engine does meanwhile.

On a cold cache with ``EngineSettings.precompile``, ESM-2's layers compile beside while the
engine compiles DNABERT-S, and the engine waits for them before ESM-2's warm-up (``join``).
With ``EngineSettings.compile_beside`` both models' layers compile beside while both run
uncompiled (``run_uncompiled``); before each stage the engine asks ``compile_when_ready``, which
switches a model to its saved layers once its process is done. Each failure is a
``CompileCacheFallback`` report, and the engine compiles the layers itself, as without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virnucpro_tui.models import reports
from virnucpro_tui.models.settings import EngineSettings

if TYPE_CHECKING:
    from virnucpro_tui.models.precompile import AheadOfTime
    from virnucpro_tui.models.side_compile import SideCompile, Target

LABELS = {"esm": "ESM-2", "dnabert": "DNABERT-S"}


@dataclass
class CompilersBeside:
    settings: EngineSettings
    report: reports.Reporter
    meanwhile_uncompiled: bool  # both models compile beside and run uncompiled meanwhile
    running: dict[str, SideCompile] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def start(self, path: Path, target: Target) -> None:
        from virnucpro_tui.models.side_compile import start

        self.running[target.model] = start(path, self.settings, target)
        self.sources[target.model] = str(path)

    def uncompiled(self, name: str) -> bool:
        """``name`` runs uncompiled until its process beside is done."""
        return self.meanwhile_uncompiled and name in self.running

    def join(self, name: str) -> None:
        """Wait for the process compiling ``name``'s layers, if there is one."""
        side = self.running.pop(name, None)
        why = side.wait() if side is not None else None
        if why is not None:
            self._failed(name, why)

    def run_uncompiled(self, name: str, bundle: Any) -> None:
        """The fast modules, uncompiled, until ``compile_when_ready`` compiles them."""
        from virnucpro_tui.models.fast import accelerate_as_set

        accelerate_as_set(name, bundle, False, self.settings)
        self.report(reports.CompilingBeside(model=name, source=self.sources[name]))

    def compile_when_ready(self, name: str, bundle: Any, ahead: AheadOfTime | None) -> bool:
        """Once the process beside has saved ``name``'s layers, run them compiled from the next
        batch on (where it failed, they compile at that batch). True when it switched."""
        side = self.running.get(name)
        if side is None or not self.uncompiled(name) or not side.done():
            return False
        del self.running[name]
        why = side.wait()
        if why is not None:
            self._failed(name, why)
        from virnucpro_tui.models.fast import compile_accelerated

        compile_accelerated(name, bundle, self.settings, ahead)
        seconds = round(side.seconds(), 3)
        self.report(reports.CompiledBeside(model=name, source=self.sources[name], seconds=seconds))
        return True

    def finish(self, timeout: float) -> list[str]:
        """At the end of a run: give the processes still compiling up to ``timeout`` s in all to
        save their layers for the next run (ended past it). Returns the models saved."""
        deadline = time.monotonic() + timeout
        saved = [
            name
            for name, side in self.running.items()
            if side.wait(max(0.0, deadline - time.monotonic())) is None
        ]
        self.running.clear()
        return saved

    def stop(self) -> None:
        """End every process beside (the engine's load failed: none is needed)."""
        for side in self.running.values():
            side.process.kill()
        self.running.clear()

    def _failed(self, name: str, why: str) -> None:
        message = f"{LABELS[name]}'s layers were not compiled in a process beside ({why}); "
        message += "compiling here"
        self.report(reports.CompileCacheFallback(model=name, message=message))
