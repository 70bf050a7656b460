"""A run directory written by the 0.1.0 release (tests/data/run_v1: interrupted, 6 shards of one
input on disk, the other input not started) resumes with today's code: its manifest is read,
its shards are verified and skipped, and the outputs are those of an uninterrupted run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT, fake_run_config, run_fake
from virnucpro_tui.models.identity import model_identities
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.pool.events import Event, JobDone, RunDone, RunStarted, ShardSkipped

RELEASE_RUN = ROOT / "tests" / "data" / "run_v1"
OUTPUTS = ("prediction_results.txt", "prediction_results_highestscore.csv")


@pytest.fixture
def models(demo_models) -> ModelFiles:
    return ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)


def release_run(tmp_path: Path, models: ModelFiles) -> tuple[list[Path], Path]:
    """The release's run directory and inputs, copied; the manifest's input paths and model
    digests pointed at this machine's copies, every other key as the release wrote it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    inputs = [tmp_path / name for name in ("small.fa", "other.fa")]
    for path in inputs:
        shutil.copy(RELEASE_RUN / path.name, path)
    out = tmp_path / "run"
    shutil.copytree(RELEASE_RUN / "run", out)
    manifest = json.loads((out / "manifest.json").read_text())
    for item in manifest["inputs"]:
        item["path"] = str(tmp_path / f"{item['job']}.fa")
    manifest["models"] = model_identities(models)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return inputs, out


def execute(inputs: list[Path], out: Path, models: ModelFiles) -> list[Event]:
    command = ["virnucpro-tui", "run", "small.fa", "other.fa"]
    return run_fake(fake_run_config(inputs, out, models, command=command))


def test_the_release_manifest_is_as_recorded() -> None:
    manifest = json.loads((RELEASE_RUN / "run" / "manifest.json").read_text())
    assert manifest["format"] == "virnucpro-tui-run/1" and manifest["status"] == "interrupted"
    assert [i["job"] for i in manifest["inputs"]] == ["small", "other"]
    assert "manifest_version" not in manifest  # the release wrote none


def test_an_interrupted_run_of_the_release_resumes_and_matches_a_fresh_run(
    tmp_path: Path, models: ModelFiles
) -> None:
    inputs, out = release_run(tmp_path / "old", models)
    events = execute(inputs, out, models)
    (started,) = [e for e in events if isinstance(e, RunStarted)]
    assert started.resumed
    skipped = sorted((e.job, e.shard) for e in events if isinstance(e, ShardSkipped))
    assert skipped == [("small", i) for i in range(6)]
    done = {e.job: e for e in events if isinstance(e, JobDone)}
    assert set(done) == {"small", "other"} and done["small"].skipped_shards == 6
    assert isinstance(events[-1], RunDone) and events[-1].status == "complete"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["format"] == "virnucpro-tui-run/1"

    fresh_inputs = [tmp_path / "fresh" / p.name for p in inputs]
    fresh_inputs[0].parent.mkdir()
    for src, dst in zip(inputs, fresh_inputs, strict=True):
        shutil.copy(src, dst)
    execute(fresh_inputs, tmp_path / "fresh" / "run", models)
    for job in ("small", "other"):
        for name in OUTPUTS:
            resumed = (out / job / name).read_bytes()
            assert resumed == (tmp_path / "fresh" / "run" / job / name).read_bytes(), (job, name)


def test_the_manifest_struct_reads_the_release_manifest_and_writes_it_back_unchanged() -> None:
    from virnucpro_tui.run.manifest import Manifest

    path = RELEASE_RUN / "run" / "manifest.json"
    manifest = Manifest.from_json(path.read_bytes(), path)
    assert manifest.status == "interrupted" and manifest.resumable is True
    assert [i.job for i in manifest.inputs] == ["small", "other"]
    assert manifest.settings.shard_size == 6 and manifest.models["dnabert"].files
    assert manifest.to_json() == path.read_text()  # key for key, in the same order


def test_a_manifest_of_a_later_format_is_refused_naming_it(tmp_path: Path) -> None:
    from virnucpro_tui.errors import RunDirError
    from virnucpro_tui.run.manifest import Manifest

    data = json.loads((RELEASE_RUN / "run" / "manifest.json").read_text())
    data["format"] = "virnucpro-tui-run/2"
    with pytest.raises(RunDirError, match=r"virnucpro-tui-run/2; this one reads .*run/1"):
        Manifest.from_json(json.dumps(data), tmp_path / "manifest.json")
    del data["inputs"]
    data["format"] = "virnucpro-tui-run/1"
    with pytest.raises(RunDirError, match="unreadable manifest .*inputs.*use --restart"):
        Manifest.from_json(json.dumps(data), tmp_path / "manifest.json")
