"""Demo models: deterministic, real formats, loadable by the real loaders, cached once."""

from __future__ import annotations

import argparse
import json
import pickletools
import random
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models import demo
from virnucpro_tui.models.demo import (
    DEMO_NOTICE,
    DemoModels,
    build_demo_models,
    demo_paths,
    ensure_demo_models,
)
from virnucpro_tui.models.dnabert import load_dnabert
from virnucpro_tui.models.weights import read_tensors

UPSTREAM_CONFIG_KEYS = {
    "_name_or_path", "alibi_starting_size", "architectures", "attention_probs_dropout_prob",
    "auto_map", "classifier_dropout", "gradient_checkpointing", "hidden_act", "hidden_dropout_prob",
    "hidden_size", "initializer_range", "intermediate_size", "layer_norm_eps",
    "max_position_embeddings", "model_type", "num_attention_heads", "num_hidden_layers",
    "pad_token_id", "position_embedding_type", "torch_dtype", "transformers_version",
    "type_vocab_size", "use_cache", "vocab_size",
}  # fmt: skip


class MLPClassifier(nn.Module):
    """Stand-in for the published class, allow-listed under its pickled name."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.dropout(F.relu(self.bn1(self.hidden_layer(x)))))


MLPClassifier.__module__ = "__main__"


def load_classifier_module(path: Path) -> nn.Module:
    allowed = [MLPClassifier, nn.Linear, nn.BatchNorm1d, nn.Dropout, set]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True).eval()


def load_esm_checkpoint(path: Path) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def fair_esm_load(path: Path) -> tuple[nn.Module, object]:
    import esm

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "Regression weights not found"
        with torch.serialization.safe_globals([argparse.Namespace]):
            return esm.pretrained.load_model_and_alphabet_local(str(path))


@pytest.fixture(scope="module")
def built(demo_models: DemoModels) -> DemoModels:
    """The session's demo set (tests/conftest.py), made by ``ensure_demo_models``."""
    return demo_models


def test_layout_and_markers(built: DemoModels) -> None:
    assert built == demo_paths(built.root)
    for path in (built.esm, built.classifier_300, built.classifier_500):
        assert path.is_file() and path.parent == built.root
    assert (built.root / "esm2_t2_demo_UR50D-contact-regression.pt").is_file()
    names = {p.name for p in built.dnabert.iterdir()}
    assert {"config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json"} <= names
    assert {"special_tokens_map.json", "demo.json"} <= names
    for marker in (built.root / "demo.json", built.dnabert / "demo.json"):
        data = json.loads(marker.read_text())
        assert data["demo"] is True and data["notice"] == DEMO_NOTICE and data["seed"] == 0
    assert "NOT biological" in DEMO_NOTICE


def test_dnabert_dir_loads_through_real_loader(built: DemoModels) -> None:
    config = json.loads((built.dnabert / "config.json").read_text())
    assert set(config) == UPSTREAM_CONFIG_KEYS
    assert config["architectures"] == ["BertModel"]
    assert config["auto_map"]["AutoModel"] == "bert_layers.BertModel"
    bundle = load_dnabert(built.dnabert)
    assert bundle.demo is True and bundle.model.pooler is not None
    assert bundle.config.hidden_size == config["hidden_size"] == 64
    assert bundle.config.vocab_size == config["vocab_size"] == bundle.tokenizer.get_vocab_size()
    tok = json.loads((built.dnabert / "tokenizer.json").read_text())
    assert [(t["id"], t["content"]) for t in tok["added_tokens"]] == list(
        enumerate(demo.SPECIAL_TOKENS)
    )
    assert tok["model"]["type"] == "BPE" and tok["post_processor"]["type"] == "TemplateProcessing"
    seq = "ATGGCGTTTAAACCCGGGTTTAGCATCGATCGTACGATCGTAGCTAGCTAGCATCGAC"
    (ids,) = bundle.tokenize([seq])
    assert ids[0] == 1 and ids[-1] == 2 and len(ids) < len(seq) // 2  # BPE merges learned
    assert "".join(bundle.tokenizer.id_to_token(i) for i in ids[1:-1]) == seq


def test_esm_checkpoint_layout_and_fair_esm_load(built: DemoModels) -> None:
    ckpt = load_esm_checkpoint(built.esm)
    cfg = ckpt["cfg"]["model"]
    assert isinstance(cfg, argparse.Namespace)
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads) == (2, 64, 4)
    assert cfg.token_dropout is True
    keys = set(ckpt["model"])
    assert "encoder.sentence_encoder.embed_tokens.weight" in keys
    assert "encoder.sentence_encoder.layers.1.self_attn.q_proj.weight" in keys
    assert "encoder.sentence_encoder.emb_layer_norm_after.weight" in keys
    assert {"encoder.lm_head.weight", "encoder.lm_head.dense.weight"} <= keys
    assert all(k.startswith(("encoder.sentence_encoder.", "encoder.lm_head.")) for k in keys)
    regression = torch.load(
        built.root / "esm2_t2_demo_UR50D-contact-regression.pt", weights_only=True
    )
    assert set(regression["model"]) == {
        "contact_head.regression.weight",
        "contact_head.regression.bias",
    }

    model, alphabet = fair_esm_load(built.esm)
    assert len(model.layers) == 2 and model.embed_dim == 64 and model.token_dropout
    ln = model.layers[0].self_attn_layer_norm.weight
    assert (ln - 1).abs().max() > 0.05  # LayerNorms were randomised
    torch.testing.assert_close(
        model.embed_tokens.weight, ckpt["model"]["encoder.sentence_encoder.embed_tokens.weight"]
    )
    _, _, toks = alphabet.get_batch_converter()([("p", "MKTAYIAKQR")])
    reps = model.eval()(toks, repr_layers=[2])["representations"][2]
    assert reps.shape == (1, 12, 64) and torch.isfinite(reps).all()


def pickle_globals(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
        data = zf.read(name)
    return [
        str(arg) for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL")
    ]


@pytest.mark.parametrize("which", ["classifier_300", "classifier_500"])
def test_classifier_pickled_like_published(built: DemoModels, which: str) -> None:
    path = getattr(built, which)
    globs = pickle_globals(path)
    assert "__main__ MLPClassifier" in globs
    assert not any("virnucpro" in g for g in globs)
    model = load_classifier_module(path)
    assert type(model).__name__ == "MLPClassifier"
    assert [n for n, _ in model.named_children()] == [
        "hidden_layer",
        "bn1",
        "output_layer",
        "dropout",
    ]
    assert model.hidden_layer.in_features == 128 and model.output_layer.out_features == 2
    assert model.dropout.p == 0.5
    assert model.bn1.running_var.sub(1).abs().max() > 0.01  # non-trivial running stats
    assert model.bn1.running_mean.abs().max() > 0.01


def test_demo_scores_spread(built: DemoModels) -> None:
    """On fresh ORF-like frames the demo scores are neither constant nor saturated."""
    bundle = load_dnabert(built.dnabert)
    esm_model, alphabet = fair_esm_load(built.esm)
    frames = demo._calibration_frames(random.Random(1234), n=80)
    ids, mask = bundle.collate(bundle.tokenize([d for d, _ in frames]))
    dna_feats = bundle.forward_pooled(ids, mask)
    _, _, toks = alphabet.get_batch_converter()([(str(i), p) for i, (_, p) in enumerate(frames)])
    with torch.no_grad():
        reps = esm_model.eval()(toks, repr_layers=[2])["representations"][2]
    prot = torch.stack([reps[i, 1 : len(p) + 1].mean(0) for i, (_, p) in enumerate(frames)])
    features = torch.cat([dna_feats, prot], dim=1)
    for path in (built.classifier_300, built.classifier_500):
        with torch.no_grad():
            virus = torch.softmax(load_classifier_module(path)(features), dim=1)[:, 1]
        assert virus.std() > 0.1
        assert virus.min() < 0.35 and virus.max() > 0.65
        assert ((virus > 0.02) & (virus < 0.98)).float().mean() > 0.8


def _all_tensors(models: DemoModels) -> dict[str, torch.Tensor]:
    out = {f"dnabert.{k}": v for k, v in read_tensors(models.dnabert / "pytorch_model.bin").items()}
    out |= {f"esm.{k}": v for k, v in load_esm_checkpoint(models.esm)["model"].items()}
    for name in ("classifier_300", "classifier_500"):
        state = load_classifier_module(getattr(models, name)).state_dict()
        out |= {f"{name}.{k}": v for k, v in state.items()}
    return out


@pytest.mark.slow
def test_build_is_deterministic(built: DemoModels, tmp_path: Path) -> None:
    again = build_demo_models(tmp_path / "again", seed=0)
    assert again.root == tmp_path / "again"
    a, b = _all_tensors(built), _all_tensors(again)
    assert a.keys() == b.keys() and len(a) > 40
    assert all(torch.equal(a[k], b[k]) for k in a), "same seed must give identical weights"
    tokenizer = (built.dnabert / "tokenizer.json").read_text()
    assert tokenizer == (again.dnabert / "tokenizer.json").read_text()


def test_ensure_reuses_the_cache(
    built: DemoModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_build(*_args: object, **_kw: object) -> DemoModels:
        raise AssertionError("the cached demo models should be reused")

    monkeypatch.setattr(demo, "build_demo_models", no_build)
    assert ensure_demo_models(built.root) == built
    copy = tmp_path / "copy"
    shutil.copytree(built.root, copy)
    monkeypatch.setenv(demo.DEMO_ENV, str(copy))
    assert ensure_demo_models() == demo_paths(copy)
    assert not list(built.root.parent.glob(f".{built.root.name}.build-*"))  # no temp dirs left


def test_other_seed_gives_other_weights(built: DemoModels, tmp_path: Path) -> None:
    demo._build_dnabert(tmp_path / "d", seed=1)
    ours = read_tensors(built.dnabert / "pytorch_model.bin")
    other = read_tensors(tmp_path / "d" / "pytorch_model.bin")
    assert not torch.equal(
        ours["encoder.layer.0.mlp.wo.weight"], other["encoder.layer.0.mlp.wo.weight"]
    )


def test_install_handles_races_and_stale_dirs(built: DemoModels, tmp_path: Path) -> None:
    target = tmp_path / "v1"
    shutil.copytree(built.root, target)
    loser = tmp_path / "loser"
    shutil.copytree(built.root, loser)
    demo._install(loser, target)  # another process won: keep its copy, no error
    assert demo._complete(target)

    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "demo.json").write_text('{"demo": true, "version": 0}')
    demo._install(loser, stale)  # an outdated demo set of ours is replaced
    assert demo._complete(stale) and not loser.exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="not a demo model directory"):
        ensure_demo_models(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "stale", "v1"]
