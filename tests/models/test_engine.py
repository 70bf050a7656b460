"""The engine's contracts on the CPU: stage seconds that add up to a shard's seconds, fp8 refused
with one line where it cannot run, the compile cache location, eager loading in the pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import SAMPLE_CONTIGS, cli, cli_env
from virnucpro_tui.core.shards import Shard
from virnucpro_tui.core.translation import Frame
from virnucpro_tui.errors import InputError, ModelError
from virnucpro_tui.models.engine import STAGES, Engine, engine_dtype
from virnucpro_tui.models.precision import (
    DeviceCapability,
    fp8_refusal,
    model_precision,
    require_precision_support,
)
from virnucpro_tui.models.reports import CompileCacheFallback, EngineReport, ModelLoaded, OomSplit
from virnucpro_tui.models.settings import EngineSettings, ModelFiles
from virnucpro_tui.pool.devices import GpuInfo, device_capabilities
from virnucpro_tui.pool.engine_events import engine_event

CPU = torch.device("cpu")


def _files(demo_models) -> ModelFiles:
    return ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)


def _shard(n: int) -> Shard:
    frames = [
        Frame(f"f{i}", "ATG" * 40 + "GCT" * (i % 7), "M" + "A" * (39 + i % 7)) for i in range(n)
    ]
    return Shard("job", 0, frames)


def test_stage_seconds_add_up_to_the_shard_seconds(demo_models) -> None:
    events: list[tuple[str, int, int, float | None]] = []

    def progress(
        stage: str, done: int, total: int, tokens: int, stage_seconds: float | None = None
    ) -> None:
        events.append((stage, done, total, stage_seconds))

    engine = Engine(_files(demo_models), CPU, EngineSettings(force_model_length=True))
    engine.load()  # as a worker does before its first shard
    untimed = []
    for _ in range(3):  # the best of three: a loaded machine may preempt between two stages
        events.clear()
        result = engine.process_shard(_shard(40), progress=progress)
        assert set(result.stage_seconds) == set(STAGES)
        assert all(v >= 0 for v in result.stage_seconds.values())
        total = sum(result.stage_seconds.values())
        assert total <= result.seconds + 1e-3
        untimed.append(result.seconds - total)
    assert min(untimed) < max(0.05 * result.seconds, 0.01), untimed
    # one event per stage carries its synchronised seconds, after that stage's batches
    ends = [(stage, s) for stage, done, total_, s in events if s is not None]
    assert [stage for stage, _ in ends] == ["dnabert", "esm", "classifier"]
    assert all(s == round(result.stage_seconds[stage], 4) for stage, s in ends)
    assert all(done == total_ == 40 for _, done, total_, s in events if s is not None)


def test_fp8_is_refused_on_the_cpu_before_any_model_loads(demo_models) -> None:
    loads: list[EngineReport] = []
    engine = Engine(_files(demo_models), CPU, EngineSettings(precision="fp8"), report=loads.append)
    with pytest.raises(ModelError, match="compute capability 8.9") as exc:
        engine.load()
    assert "\n" not in str(exc.value) and exc.value.exit_code == 2
    assert loads == [] and not engine.loaded


@pytest.mark.slow
def test_fp8_refused_by_the_cli_with_one_line_and_exit_2(tmp_path: Path, demo_models) -> None:
    out = tmp_path / "run"
    r = cli(
        ["run", str(SAMPLE_CONTIGS), "--demo", "--precision", "fp8", "--devices", "cpu:1"]
        + ["--out", str(out), "--no-ui"],
        cli_env(demo_models.root),
    )
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--precision fp8 needs an NVIDIA GPU" in lines[0], r.stderr
    assert not (out / "events.jsonl").exists()  # refused before the run started


def test_fp8_refusal_per_device() -> None:
    assert fp8_refusal(DeviceCapability("cuda", "NVIDIA H200", (9, 0))) is None
    assert fp8_refusal(DeviceCapability("cuda", "NVIDIA L4", (8, 9))) is None
    old = fp8_refusal(DeviceCapability("cuda", "NVIDIA A100-SXM4-80GB", (8, 0)))
    assert old is not None and "A100" in old and "8.0" in old
    with pytest.raises(ModelError, match="V100"):
        require_precision_support("fp8", [DeviceCapability("cuda", "Tesla V100", (7, 0))])
    require_precision_support("fp16", [DeviceCapability("cpu", "CPU")])  # only fp8 is checked
    gpus = [
        GpuInfo(0, "GPU-a", "NVIDIA H200", 1, (9, 0)),
        GpuInfo(1, "GPU-b", "NVIDIA A100", 1, (8, 0)),
    ]
    caps = device_capabilities("0,1", gpus)
    assert [c.capability for c in caps] == [(9, 0), (8, 0)]
    assert [fp8_refusal(c) is None for c in caps] == [True, False]
    assert device_capabilities("cpu:2", gpus) == [DeviceCapability("cpu", "CPU")] * 2


def test_precision_per_model_and_setting_validation() -> None:
    assert model_precision("auto", "cuda", "esm") == "fp16"
    assert model_precision("auto", "cuda", "dnabert") == "bf16"
    assert model_precision("auto", "cpu", "esm") == "fp32"
    assert model_precision("fp8", "cuda", "esm") == "bf16"  # row-wise FP8 products return bf16
    assert engine_dtype(EngineSettings(precision="fp8"), torch.device("cuda"), "esm") == (
        torch.bfloat16
    )
    assert engine_dtype(EngineSettings(precision="fp16"), CPU, "dnabert") == torch.float16
    with pytest.raises(InputError, match="fp9"):
        EngineSettings(precision="fp9")
    with pytest.raises(InputError, match="dnabert_attention"):
        EngineSettings(dnabert_attention="dense")


def test_compile_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from virnucpro_tui.models import compile_cache

    for var in ("VIRNUCPRO_TUI_COMPILE_CACHE", "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.default_cache_dir() == tmp_path / "home/.cache/virnucpro-tui/compile"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_cache_dir() == tmp_path / "xdg/virnucpro-tui/compile"
    monkeypatch.setenv("VIRNUCPRO_TUI_COMPILE_CACHE", str(tmp_path / "mine"))
    path = compile_cache.configure()
    assert path == tmp_path / "mine" and path.is_dir()
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(path)
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    # a cache dir the user chose for torch is left alone; an explicit one always wins
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torch-own"))
    assert compile_cache.configure() == tmp_path / "torch-own"
    assert compile_cache.configure(tmp_path / "explicit") == tmp_path / "explicit"


def _pipeline_events(tmp_path: Path, demo_models, eager: bool | None) -> list[dict[str, Any]]:
    from virnucpro_tui.pool.event_sinks import read_events
    from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig

    out = tmp_path / "run"
    cfg = RunConfig(
        inputs=[SAMPLE_CONTIGS],
        out=out,
        devices="cpu:1",
        models=_files(demo_models),
        engine=EngineSettings(force_model_length=True, eager_load=eager),
        shard_size=64,
    )
    assert Orchestrator(cfg, []).execute() == 0
    return read_events(out / "events.jsonl")


@pytest.mark.slow
def test_pool_reports_stage_seconds_and_loads_eagerly(tmp_path: Path, demo_models) -> None:
    ev = _pipeline_events(tmp_path / "eager", demo_models, eager=True)
    done = [e for e in ev if e["type"] == "shard_done"]
    assert len(done) >= 2
    for e in done:
        total = sum(e["stage_seconds"].values())
        assert set(e["stage_seconds"]) <= set(STAGES)
        assert total <= e["seconds"] + 1e-3
        assert e["seconds"] - total < max(0.05 * e["seconds"], 0.01), e
    ends = [e for e in ev if e["type"] == "progress" and "stage_seconds" in e]
    assert {e["stage"] for e in ends} == {"dnabert", "esm", "classifier"}
    assert all(e["stage_done"] == e["stage_total"] for e in ends)
    # eager: the models load at worker start, outside any job, before the first task
    loads = [e for e in ev if e["type"] == "model_load"]
    first_task = min(e["ts"] for e in ev if e["type"] == "progress")
    assert loads and all(e["job"] is None and e["ts"] <= first_task for e in loads)
    lazy = _pipeline_events(tmp_path / "lazy", demo_models, eager=None)  # CPU default: lazy
    assert all(e["job"] is not None for e in lazy if e["type"] == "model_load")


def test_view_takes_stage_rates_from_synchronised_seconds() -> None:
    """Batch events are counted when queued on the GPU: the stage rate comes from the
    stage-end event's ``stage_seconds`` (the dashboard once showed ESM-2 above its peak)."""
    from virnucpro_tui.pool import events as ev
    from virnucpro_tui.run.view import RunView

    view = RunView()

    def progress(stage: str, done: int, seconds: float, **extra: Any) -> None:
        view.apply(
            ev.Progress(worker=0, job="j", shard=0, stage=stage, frames_done=done,
                        frames_total=2048, stage_done=done, stage_total=2048, tokens=0,
                        seconds=seconds, **extra)
        )  # fmt: skip

    progress("start", 0, 0.0)
    progress("dnabert", 2048, 0.05)  # queued
    progress("dnabert", 2048, 0.15, stage_seconds=0.15)
    progress("esm", 2048, 0.9)  # queued ahead of the GPU: 2048 / 0.75 s would be 2,731/s
    progress("esm", 2048, 3.85, stage_seconds=3.7)
    w = view.workers[0]
    assert w.esm_rate == pytest.approx(2048 / 3.7)
    assert w.dnabert_rate == pytest.approx(2048 / 0.15)
    progress("esm", 2048, 0.5)  # a later queued close does not override it
    assert w.esm_rate == pytest.approx(2048 / 3.7)


def test_the_engine_reports_each_load_typed_and_the_worker_sends_them_as_events(
    demo_models,
) -> None:
    reports: list[EngineReport] = []
    engine = Engine(_files(demo_models), CPU, EngineSettings(), report=reports.append)
    engine.load()
    order = [(type(r).__name__, r.model) for r in reports]
    assert order == [
        ("LoadStarted", "dnabert"),
        ("LoadStarted", "esm"),
        ("ModelLoaded", "dnabert"),
        ("ModelLoaded", "esm"),
        ("LoadStarted", "classifier"),
        ("ModelLoaded", "classifier"),
    ]
    loaded = reports[-1]
    assert isinstance(loaded, ModelLoaded) and loaded.compile_seconds is None  # no fast path
    event = engine_event(loaded, worker=2, job="a", shard=7).to_json()
    assert event["type"] == "model_load" and event["phase"] == "done"
    assert (event["worker"], event["job"], event["shard"]) == (2, "a", 7)
    assert event["model"] == "classifier" and event["dtype"] == "float32"
    assert event["fast_path"] is False and event["compile_seconds"] is None
    assert event["seconds"] == round(loaded.seconds, 3) and event["demo"] is True
    assert "message" not in event and "compile" not in event
    start = engine_event(reports[0], worker=2, job=None, shard=None).to_json()
    assert {k: start[k] for k in ("phase", "model", "dtype")} == {
        "phase": "start",
        "model": "dnabert",
        "dtype": "float32",
    }
    assert "seconds" not in start


def test_engine_oom_and_cache_fallback_reports_become_oom_and_warning_events() -> None:
    oom = engine_event(OomSplit(model="esm", batch_size=8, bytes_freed=1024), 1, "a", 4)
    assert oom.to_json() | {"ts": 0} == {
        "type": "oom",
        "v": 1,
        "ts": 0,
        "worker": 1,
        "job": "a",
        "shard": 4,
        "model": "esm",
        "batch_size": 8,
        "action": "split",
        "bytes_freed": 1024,
    }
    warning = engine_event(CompileCacheFallback(model="esm", message="stale"), 1, None, None)
    assert warning.to_json()["type"] == "warning"
    assert warning.to_json()["message"] == "esm: stale"


def test_dnabert_batches_align_their_columns_only_for_the_bias_tensor(tmp_path: Path) -> None:
    """Eight-column alignment serves the ALiBi bias tensor on a GPU; under FlexAttention it
    would only add padding. Built for a GPU without touching CUDA."""
    from types import SimpleNamespace

    files = ModelFiles(tmp_path / "e.pt", tmp_path / "d", tmp_path / "c.pth")
    aligned = {}
    for device, model in (
        ("cuda", SimpleNamespace(flex=True)),  # the compiled fast path
        ("cuda", SimpleNamespace(flex=False)),  # the fast path with the bias tensor
        ("cuda", SimpleNamespace()),  # the reference model (fp32 on a GPU): bias tensor
        ("cpu", SimpleNamespace(flex=False)),
    ):
        engine = Engine(files, torch.device(device))
        engine.dnabert = SimpleNamespace(model=model)
        aligned[(device, getattr(model, "flex", None))] = engine._dnabert_align()
    assert aligned == {("cuda", True): 1, ("cuda", False): 8, ("cuda", None): 8, ("cpu", False): 1}
    assert not torch.cuda.is_initialized()
