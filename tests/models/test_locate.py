"""Model lookup: explicit paths > config file > standard caches, and the not-found message."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.locate import ModelPaths, resolve_model_paths

DNABERT_CACHE = "models--zhihan1996--DNABERT-S"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_home(tmp_path, monkeypatch)


def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean HOME and working directory, with no cache or config variables set."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    for var in (
        "TORCH_HOME",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "VIRNUCPRO_TUI_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def snapshot(hub: Path, rev: str, weights: bool = True, tokenizer: bool = True) -> Path:
    snap = hub / DNABERT_CACHE / "snapshots" / rev
    touch(snap / "config.json", "{}")
    if weights:
        touch(snap / "pytorch_model.bin")
    if tokenizer:
        touch(snap / "tokenizer.json", "{}")
    return snap


def standard_caches(home: Path, length: int = 300) -> ModelPaths:
    esm = touch(home / ".cache/torch/hub/checkpoints/esm2_t36_3B_UR50D.pt")
    dnabert = snapshot(home / ".cache/huggingface/hub", "abc123")
    classifier = touch(home / f".cache/virnucpro-tui/{length}_model.pth")
    return ModelPaths(esm, dnabert, classifier)


def test_standard_caches(home: Path) -> None:
    expected = standard_caches(home)
    assert resolve_model_paths(300) == expected


def test_classifier_in_current_directory_wins_over_cache(home: Path) -> None:
    standard_caches(home, 500)
    local = touch(Path.cwd() / "500_model.pth")
    assert resolve_model_paths(500).classifier == local


def test_config_beats_caches_and_explicit_beats_config(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standard_caches(home)
    models = tmp_path / "models"
    esm = touch(models / "my_esm.pt")
    dna_dir = models / "dnabert"
    touch(dna_dir / "config.json")
    c300 = touch(models / "c300.pth")
    config = touch(
        home / ".config/virnucpro-tui/models.toml",
        f'esm = "{esm}"\ndnabert = "{dna_dir}/config.json"\n'
        f'classifier_300 = "{c300}"\nclassifier_500 = "relative/500.pth"\n',
    )
    assert resolve_model_paths(300) == ModelPaths(esm, dna_dir, c300)

    # explicit paths win over the config file
    other = touch(tmp_path / "explicit_esm.pt")
    assert resolve_model_paths(300, esm=other).esm == other

    # relative config paths are relative to the config file; a missing one is an error
    with pytest.raises(
        ModelError, match=r"relative/500\.pth: classifier model not found .*classifier_500"
    ):
        resolve_model_paths(500)
    touch(config.parent / "relative/500.pth")
    assert resolve_model_paths(500).classifier == config.parent / "relative/500.pth"

    # $VIRNUCPRO_TUI_CONFIG replaces the default location; --config replaces both
    alt = touch(tmp_path / "alt.toml", f'esm = "{other}"\n')
    monkeypatch.setenv("VIRNUCPRO_TUI_CONFIG", str(alt))
    assert resolve_model_paths(300).esm == other
    assert resolve_model_paths(300, config=config).esm == esm
    with pytest.raises(ModelError, match="nope.toml: model config file not found"):
        resolve_model_paths(300, config=tmp_path / "nope.toml")


def test_xdg_config_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standard_caches(home)
    esm = touch(tmp_path / "esm_from_xdg.pt")
    touch(tmp_path / "xdg/virnucpro-tui/models.toml", f'esm = "{esm}"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert resolve_model_paths(300).esm == esm


def test_bad_config(home: Path, tmp_path: Path) -> None:
    bad = touch(tmp_path / "bad.toml", "esm = [unclosed\n")
    with pytest.raises(ModelError, match="bad.toml: unreadable model config"):
        resolve_model_paths(300, config=bad)
    typo = touch(tmp_path / "typo.toml", 'classifer_300 = "x"\n')
    with pytest.raises(ModelError, match="unknown key.*classifer_300"):
        resolve_model_paths(300, config=typo)


def test_explicit_missing_path_is_named(home: Path, tmp_path: Path) -> None:
    standard_caches(home)
    missing = tmp_path / "gone" / "esm.pt"
    with pytest.raises(ModelError, match=f"^{missing}: ESM-2 3B model not found"):
        resolve_model_paths(300, esm=missing)


def test_dnabert_file_inside_directory(home: Path, tmp_path: Path) -> None:
    standard_caches(home)
    directory = tmp_path / "DNABERT-S"
    weights = touch(directory / "pytorch_model.bin")
    assert resolve_model_paths(300, dnabert=weights).dnabert == directory
    assert resolve_model_paths(300, dnabert=directory).dnabert == directory


def test_hf_snapshot_refs_main_then_newest_complete(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standard_caches(home)
    hub = tmp_path / "hf_home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    old = snapshot(hub, "old0000")
    new = snapshot(hub, "new1111")
    snapshot(hub, "partial2", tokenizer=False)  # newest, but incomplete
    now = time.time()
    os.utime(old, (now - 100, now - 100))
    os.utime(new, (now - 50, now - 50))
    assert resolve_model_paths(300).dnabert == new  # no refs/main: newest complete
    touch(hub / DNABERT_CACHE / "refs/main", "old0000\n")
    assert resolve_model_paths(300).dnabert == old  # refs/main names it
    # $HF_HUB_CACHE wins over $HF_HOME
    other = snapshot(tmp_path / "hub_cache", "zzz9999")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    assert resolve_model_paths(300).dnabert == other


def test_torch_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standard_caches(home)
    esm = touch(tmp_path / "th/hub/checkpoints/esm2_t36_3B_UR50D.pt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert resolve_model_paths(300).esm == esm


def test_missing_models_list_every_path_tried(home: Path) -> None:
    snapshot(home / ".cache/huggingface/hub", "bad", weights=False)
    with pytest.raises(ModelError) as info:
        resolve_model_paths(500)
    lines = str(info.value).splitlines()
    text = "\n".join(lines)
    assert lines[0] == "model files not found: ESM-2 3B, DNABERT-S, classifier"
    hub = home / ".cache/huggingface/hub"
    for tried in (
        home / ".cache/torch/hub/checkpoints/esm2_t36_3B_UR50D.pt",
        hub / "models--facebook--esm2_t36_3B_UR50D/snapshots",
        hub / DNABERT_CACHE / "snapshots/bad",
        Path.cwd() / "500_model.pth",
        home / ".cache/virnucpro-tui/500_model.pth",
    ):
        assert f"  {tried}" in lines, f"{tried} not listed:\n{text}"
    assert "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t36_3B_UR50D.pt" in text
    assert "esm2_t36_3B_UR50D-contact-regression.pt" in text
    assert "huggingface-cli download zhihan1996/DNABERT-S" in text
    assert "500_model.pth from https://github.com/Li-Jing-1997/VirNucPro" in text


def test_only_the_missing_model_is_reported(home: Path) -> None:
    paths = standard_caches(home)
    paths.esm.unlink()
    with pytest.raises(ModelError) as info:
        resolve_model_paths(300)
    message = str(info.value)
    assert message.startswith("model files not found: ESM-2 3B\n")
    assert "DNABERT-S: tried" not in message and "classifier: tried" not in message
