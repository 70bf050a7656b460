"""Layers compiled ahead of time: saved by the first process, loaded (not traced) by the next,
equal to the reference, and never a failed run when a saved file is damaged, stale or refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from virnucpro_tui.models import compile_cache, reports
from virnucpro_tui.models.precompile import REFUSED, SUFFIX, PrecompiledForward

MODELS_RUN = textwrap.dedent(
    """
    import json, sys, torch
    from pathlib import Path
    from virnucpro_tui.models import compile_cache
    from virnucpro_tui.models.demo import demo_paths
    from virnucpro_tui.models.dnabert import load_dnabert
    from virnucpro_tui.models.esm import load_esm
    from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm
    from virnucpro_tui.models.precompile import AheadOfTime

    demo, cache = demo_paths(sys.argv[1]), Path(sys.argv[2])
    compile_cache.configure(cache / "inductor")
    said = []
    PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MA", "GGGGSLLLKKKEEEDDDRRRPPPAAA" * 3]
    DNA = ["ATGC" * 60, "ACGTTGCA" * 9, "ATGAAACCCGGGTTT" * 20]
    out = {}
    ref, esm = load_esm(demo.esm), load_esm(demo.esm)
    accelerate_esm(esm, True, ahead=AheadOfTime(cache / "esm", said.append))
    err = 0.0
    for batch in (PROTEINS, [PROTEINS[0]] * 3):  # padded, and not (two graphs)
        ids, lengths = ref.pad(ref.tokenize(batch))
        got = esm.forward_pooled(ids, lengths)
        err = max(err, float((got - ref.forward_pooled(ids, lengths)).abs().max()))
    shared = esm.encoder.layers[0].forward.precompiled
    out["esm"] = {"err": err, "loaded": shared.loaded, "variants": len(shared.variants)}
    ref, dna = load_dnabert(demo.dnabert), load_dnabert(demo.dnabert)
    accelerate_dnabert(dna, True, attention="flex", ahead=AheadOfTime(cache / "dna", said.append))
    ids, mask = ref.collate(ref.tokenize(DNA))
    err = float((dna.forward_pooled(ids, mask) - ref.forward_pooled(ids, mask)).abs().max())
    shared = dna.model.layers[0].forward.precompiled
    out["dna"] = {"err": err, "loaded": shared.loaded, "variants": len(shared.variants)}
    out["said"] = said
    print("RESULT " + json.dumps(out))
    """
)


def _fresh(script: str, *args: object) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


def _saved(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


@pytest.mark.slow
def test_the_next_process_loads_the_saved_layers_and_a_damaged_file_is_compiled_again(
    demo_models: Any, tmp_path: Path
) -> None:
    """ESM-2 (two graphs: with and without padding) and DNABERT-S (FlexAttention) on the CPU."""
    cold = _fresh(MODELS_RUN, demo_models.root, tmp_path)
    assert cold["said"] == []
    assert cold["esm"]["loaded"] == 0 and cold["esm"]["variants"] == 2
    assert cold["dna"]["loaded"] == 0 and cold["dna"]["variants"] == 1
    esm_files, dna_files = _saved(tmp_path / "esm"), _saved(tmp_path / "dna")
    assert len(esm_files) == 2 and len(dna_files) == 1

    warm = _fresh(MODELS_RUN, demo_models.root, tmp_path)
    assert warm["said"] == []
    assert warm["esm"] == {**warm["esm"], "loaded": 2, "variants": 2}  # nothing traced again
    assert warm["dna"] == {**warm["dna"], "loaded": 1, "variants": 1}
    assert _saved(tmp_path / "esm") == esm_files and _saved(tmp_path / "dna") == dna_files
    for run in (cold, warm):
        assert run["esm"]["err"] < 2e-5 and run["dna"]["err"] < 2e-5, run

    esm_files[0].write_bytes(esm_files[0].read_bytes()[:500] + b"\x00 damaged")
    healed = _fresh(MODELS_RUN, demo_models.root, tmp_path)
    assert len(healed["said"]) == 1 and "could not be used" in healed["said"][0]
    assert healed["esm"]["loaded"] == 1 and healed["esm"]["variants"] == 2
    assert healed["esm"]["err"] < 2e-5 and len(_saved(tmp_path / "esm")) == 2


LAYER_SOURCE = """
import torch

class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.relu(self.lin(x)) * {factor}
"""

LAYER_RUN = textwrap.dedent(
    """
    import json, sys, torch
    from pathlib import Path
    from virnucpro_tui.models import compile_cache
    from virnucpro_tui.models.precompile import AheadOfTime, install

    sys.path.insert(0, sys.argv[1])
    import layer_mod

    compile_cache.configure(Path(sys.argv[2]) / "inductor")
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([layer_mod.Layer(), layer_mod.Layer()])
    with torch.inference_mode():  # as the models run: one graph for both calls
        x = torch.randn(5, 8)
        expected = layers[1](layers[0](x))
    said = []
    shared = install(layers, AheadOfTime(Path(sys.argv[2]) / "layer", said.append))
    with torch.inference_mode():
        got = layers[1](layers[0](x))
    out = {"equal": bool(torch.allclose(got, expected, atol=1e-6)), "said": said,
           "loaded": shared.loaded, "jit": shared.jit is not None}
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_a_changed_layer_source_is_compiled_again_and_a_refused_one_runs_compiled_as_usual(
    tmp_path: Path,
) -> None:
    source, cache = tmp_path / "src", tmp_path / "cache"
    source.mkdir()
    module = source / "layer_mod.py"
    module.write_text(LAYER_SOURCE.format(factor=2))
    first = _fresh(LAYER_RUN, source, cache)
    assert first == {"equal": True, "said": [], "loaded": 0, "jit": False}
    assert _fresh(LAYER_RUN, source, cache) == {**first, "loaded": 1}

    module.write_text(LAYER_SOURCE.format(factor=3))  # a new version of the layer
    changed = _fresh(LAYER_RUN, source, cache)
    assert changed["equal"] and changed["loaded"] == 0 and not changed["jit"]
    assert len(changed["said"]) == 1 and "source changed" in changed["said"][0]

    module.write_text(LAYER_SOURCE.format(factor="(torch._dynamo.graph_break() or 3)"))
    refused = _fresh(LAYER_RUN, source, cache)
    assert refused["equal"] and refused["jit"]  # torch.compile, graph break and all
    assert "cannot be compiled ahead of time" in refused["said"][-1]
    assert (cache / "layer" / REFUSED).exists()
    again = _fresh(LAYER_RUN, source, cache)  # the refusal is remembered, and said again
    assert again["equal"] and again["jit"] and again["said"] == refused["said"][-1:]


def test_clearing_a_damaged_cache_drops_the_layers_loaded_from_it(tmp_path: Path) -> None:
    shared = PrecompiledForward(lambda module, x: x, tmp_path / "layer", lambda _: None)
    shared.variants, shared.loaded = [object()], 1
    said: list[str] = []

    def fail() -> None:
        raise RuntimeError("a stale kernel")

    compile_cache.run_or_recompile(fail, tmp_path, said.append, again=lambda: None)
    assert shared.variants == [] and shared.loaded is None  # the next call reads the disk again
    assert len(said) == 1


def test_the_engine_saves_each_model_variant_apart_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    files = ModelFiles(tmp_path / "e.pt", tmp_path / "d", tmp_path / "c.pth")
    events: list[Any] = []
    off = Engine(files, torch.device("cpu"), EngineSettings(), report=events.append)
    off.compiled_into = tmp_path
    assert off._ahead("esm") is None
    monkeypatch.setenv("VIRNUCPRO_TUI_PRECOMPILE", "1")
    engine = Engine(files, torch.device("cpu"), EngineSettings(), report=events.append)
    assert engine.settings.precompile
    assert engine._ahead("esm") is None  # nothing compiles without a cache
    engine.compiled_into = tmp_path
    esm, dna = engine._ahead("esm"), engine._ahead("dnabert")
    assert esm is not None and dna is not None
    assert esm.directory.parent == dna.directory.parent == tmp_path / "precompiled"
    assert esm.directory.name.startswith("esm_float32_") and ":" not in esm.directory.name
    assert dna.directory.name.startswith("dnabert_float32_flex")
    # a cache warm for torch.compile is not warm for layers saved whole: the warm-up that
    # compiles them is not reported as loading from the cache
    assert esm.directory.name.endswith("_ahead-of-time")
    assert engine.compile_variant("esm") != off.compile_variant("esm")
    esm.report("why")
    assert events == [reports.CompileCacheFallback(model="esm", message="why")]


# an engine on the demo models, its reports in ``said``: argv demo root, compile cache
ENGINE_PRELUDE = textwrap.dedent(
    """
    import json, sys, torch
    from pathlib import Path
    from virnucpro_tui.core.shards import Shard
    from virnucpro_tui.core.translation import Frame
    from virnucpro_tui.models import reports
    from virnucpro_tui.models.demo import demo_paths
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    demo, cache = demo_paths(sys.argv[1]), Path(sys.argv[2])
    files = ModelFiles(demo.esm, demo.dnabert, demo.classifier_500)
    frames = [Frame(f"f{i}", "ATG" * 40 + "GCT" * (i % 7), "M" + "A" * (39 + i % 7))
              for i in range(40)]
    said = []
    """
)

ENGINE_RUN = ENGINE_PRELUDE + textwrap.dedent(
    """
    settings = EngineSettings(force_model_length=True, compile=True, precompile=True,
                              compile_beside=False, exact_gelu=True, compile_cache=cache)
    import virnucpro_tui.models.engine as engine_module
    rows, full_warm_up = [], engine_module.warm_up
    def counted_warm_up(name, bundle, n, device):
        rows.append([name, n])
        full_warm_up(name, bundle, n, device)
    engine_module.warm_up = counted_warm_up
    engine = Engine(files, torch.device("cpu"), settings, report=said.append)
    got = engine.process_shard(Shard("job", 0, frames)).probs
    plain = Engine(files, torch.device("cpu"), EngineSettings(force_model_length=True))
    expected = plain.process_shard(Shard("job", 0, frames)).probs
    out = {
        "max_diff": float(abs(got - expected).max()),
        "cached": [r.cached for r in said if isinstance(r, reports.WarmupStarted)],
        "fallbacks": [r.message for r in said if isinstance(r, reports.CompileCacheFallback)],
        "saved": sorted(p.parent.name for p in cache.rglob("*.aot")),
        "esm_loaded": engine.esm.encoder.layers[0].forward.precompiled.loaded,
        "dnabert_loaded": engine.dnabert.model.layers[0].forward.precompiled.loaded,
        "warmup_rows": rows,
    }
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_the_engine_saves_its_layers_compiled_and_the_next_engine_loads_them(
    demo_models: Any, tmp_path: Path
) -> None:
    """The engine's own path (``EngineSettings.precompile``), compiled on the CPU: ESM-2's
    layers are compiled by a process beside the engine while it compiles DNABERT-S, so even the
    first engine loads them; the second finds the cache warm and every layer saved, and both
    score as the uncompiled engine."""
    cold = _fresh(ENGINE_RUN, demo_models.root, tmp_path)
    assert cold["cached"] == [False, False] and cold["fallbacks"] == []
    assert cold["esm_loaded"] == 2 and cold["dnabert_loaded"] == 0  # ESM-2: compiled beside
    variants = {name.split("_")[0] for name in cold["saved"]}
    assert variants == {"dnabert", "esm"} and len(cold["saved"]) >= 3  # ESM-2: two graphs
    warm = _fresh(ENGINE_RUN, demo_models.root, tmp_path)
    assert warm["cached"] == [True, True] and warm["fallbacks"] == []
    assert warm["saved"] == cold["saved"]  # loaded: nothing compiled again
    assert warm["esm_loaded"] == 2 and warm["dnabert_loaded"] == 1
    # the cold warm-up compiled at a full batch (CPU budgets: 4,096 and 16,384 tokens); the warm
    # one only loads, on a small batch, and that batch compiled nothing new (same files)
    assert cold["warmup_rows"] == [["dnabert", 146], ["esm", 24]]
    assert warm["warmup_rows"] == [["dnabert", 8], ["esm", 8]]
    for run in (cold, warm):
        assert run["max_diff"] < 1e-5, run


@pytest.mark.slow
def test_workers_compiling_the_same_layer_at_once_save_one_file(tmp_path: Path) -> None:
    source, cache = tmp_path / "src", tmp_path / "cache"
    source.mkdir()
    (source / "layer_mod.py").write_text(LAYER_SOURCE.format(factor=2))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", LAYER_RUN, str(source), str(cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0
        assert '"equal": true' in out
    assert len(_saved(cache / "layer")) == 1
    assert _fresh(LAYER_RUN, source, cache)["loaded"] == 1


BESIDE_RUN = ENGINE_PRELUDE + textwrap.dedent(
    """
    settings = EngineSettings(force_model_length=True, compile=True, precompile=True,
                              compile_beside=True, exact_gelu=True, compile_cache=cache)
    engine = Engine(files, torch.device("cpu"), settings, report=said.append)
    shard = Shard("job", 0, frames)
    first = engine.process_shard(shard).probs
    names = lambda kind: [r.model for r in said if isinstance(r, kind)]
    out = {"beside_at_first_shard": names(reports.CompilingBeside),
           "compiled_at_first_shard": names(reports.CompiledBeside),
           "warmups": names(reports.WarmupStarted)}
    for side in list(engine.beside.running.values()):
        side.process.wait(600)
    second = engine.process_shard(shard).probs
    plain = Engine(files, torch.device("cpu"), EngineSettings(force_model_length=True))
    expected = plain.process_shard(shard).probs
    out.update({
        "max_diff": [float(abs(got - expected).max()) for got in (first, second)],
        "compiled": names(reports.CompiledBeside),
        "fallbacks": [r.message for r in said if isinstance(r, reports.CompileCacheFallback)],
        "saved": sorted(p.parent.name.split("_")[0] for p in cache.rglob("*.aot")),
        "esm_loaded": engine.esm.encoder.layers[0].forward.precompiled.loaded,
        "dnabert_loaded": engine.dnabert.model.layers[0].forward.precompiled.loaded,
        "warm": engine.compiled_into is not None and (engine.compiled_into / "warm").exists(),
    })
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_with_compile_beside_the_first_shard_runs_uncompiled_and_later_ones_compiled(
    demo_models: Any, tmp_path: Path
) -> None:
    """``compile_beside`` on a cold cache: no model waits for compilation; both run uncompiled
    (no warm-up) while processes beside save their layers, and compiled, from those files,
    once they are done; the scores equal the uncompiled engine's throughout. The next engine
    finds the cache warm and compiles nothing beside."""
    cold = _fresh(BESIDE_RUN, demo_models.root, tmp_path)
    assert sorted(cold["beside_at_first_shard"]) == ["dnabert", "esm"]
    assert cold["warmups"] == [] and cold["fallbacks"] == []
    assert sorted(cold["compiled"]) == ["dnabert", "esm"]
    assert cold["esm_loaded"] == 2 and cold["dnabert_loaded"] == 1  # from the files beside
    # the stubs' graphs fit the real models: nothing was compiled again after the switch
    assert cold["saved"].count("dnabert") == 1 and cold["saved"].count("esm") == 2
    assert cold["warm"]
    warm = _fresh(BESIDE_RUN, demo_models.root, tmp_path)
    assert warm["beside_at_first_shard"] == [] and warm["compiled"] == []
    assert sorted(warm["warmups"]) == ["dnabert", "esm"] and warm["fallbacks"] == []
    for run in (cold, warm):
        assert max(run["max_diff"]) < 1e-5, run


def _side(tmp_path: Path, code: str) -> Any:
    from virnucpro_tui.models.side_compile import SideCompile

    log = tmp_path / "side-compile.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", code], stderr=stderr)
    return SideCompile(process, log)


def test_a_failed_or_stuck_side_compile_is_said_and_the_engine_compiles_itself(
    tmp_path: Path,
) -> None:
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    assert _side(tmp_path, "pass").wait() is None
    failed = _side(tmp_path, "import sys; sys.exit('no GPU memory left')").wait()
    assert failed == "it ended with exit code 1: no GPU memory left"
    stuck = _side(tmp_path, "import time; time.sleep(60)")
    assert stuck.wait(timeout=0.5) == "it ran past 0 s"
    assert stuck.process.returncode is not None  # killed, not left behind

    events: list[Any] = []
    files = ModelFiles(tmp_path / "e.pt", tmp_path / "d", tmp_path / "c.pth")
    engine = Engine(files, torch.device("cpu"), EngineSettings(), report=events.append)
    engine.beside.running["esm"] = _side(tmp_path, "import sys; sys.exit('no GPU memory left')")
    engine.beside.join("esm")
    assert engine.beside.running == {}
    assert events == [
        reports.CompileCacheFallback(
            model="esm",
            message="ESM-2's layers were not compiled in a process beside (it ended with exit "
            "code 1: no GPU memory left); compiling here",
        )
    ]


def test_the_side_compile_ends_when_the_engines_process_is_killed(tmp_path: Path) -> None:
    """kill -9 of the worker leaves no compiling process behind."""
    import os
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    child = (
        "import os, sys, time; from virnucpro_tui.models.side_compile import _end_with_parent; "
        f"_end_with_parent(); open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(120)"
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.Popen([sys.executable, "
            f"'-c', {child!r}]); time.sleep(120)",
        ]  # fmt: skip
    )
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the side process outlived the engine's")


def test_a_finished_run_lets_the_compiles_beside_save_for_the_next_run_then_ends_them(
    tmp_path: Path,
) -> None:
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    files = ModelFiles(tmp_path / "e.pt", tmp_path / "d", tmp_path / "c.pth")
    engine = Engine(files, torch.device("cpu"), EngineSettings(precompile=True))
    engine.compiled_into = tmp_path
    saving = _side(tmp_path, "import time; time.sleep(0.3)")
    stuck = _side(tmp_path, "import time; time.sleep(60)")
    engine.beside.running.update({"esm": saving, "dnabert": stuck})
    engine.finish(timeout=2.0)
    assert engine.beside.running == {}
    assert saving.process.returncode == 0
    assert stuck.process.returncode is not None  # ended, not left behind
    assert compile_cache.is_warm(tmp_path, engine.compile_variant("esm"))
    assert not compile_cache.is_warm(tmp_path, engine.compile_variant("dnabert"))


@pytest.mark.parametrize(
    ("device", "precision", "env", "precompiles", "beside"),
    [
        ("cuda", "auto", {}, True, True),  # measured on an H100: on by default
        ("cuda", "fp8", {}, False, False),  # not measured with fp8
        ("cpu", "auto", {}, False, False),  # the CPU compiles only for tests
        ("cuda", "auto", {"VIRNUCPRO_TUI_PRECOMPILE": "0"}, False, False),
        ("cuda", "auto", {"VIRNUCPRO_TUI_COMPILE_BESIDE": "0"}, True, False),
        ("cuda", "fp8", {"VIRNUCPRO_TUI_PRECOMPILE": "1"}, True, True),
        ("cpu", "auto", {"VIRNUCPRO_TUI_PRECOMPILE": "1"}, True, True),
    ],
)
def test_layers_compile_ahead_and_beside_by_default_on_a_gpu_and_as_the_environment_says(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    device: str,
    precision: str,
    env: dict[str, str],
    precompiles: bool,
    beside: bool,
) -> None:
    from virnucpro_tui.models.engine import Engine
    from virnucpro_tui.models.settings import EngineSettings, ModelFiles

    for name in ("VIRNUCPRO_TUI_PRECOMPILE", "VIRNUCPRO_TUI_COMPILE_BESIDE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    files = ModelFiles(tmp_path / "e.pt", tmp_path / "d", tmp_path / "c.pth")
    engine = Engine(files, torch.device(device), EngineSettings(precision=precision))
    assert engine.precompiles is precompiles
    assert engine.beside.meanwhile_uncompiled is beside
    assert not torch.cuda.is_initialized()
