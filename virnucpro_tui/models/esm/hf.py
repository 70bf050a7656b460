"""ESM-2 in a transformers directory (``config.json``, ``vocab.txt``, safetensors or torch
weights, possibly sharded): checked and loaded as data, without transformers or remote code.
Parameter names are mapped to fair-esm's, so the same EsmEncoder runs it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.esm.encoder import (
    ROPE_THETA,
    EncoderShape,
    EsmEncoder,
    encoder_with_weights,
    uninitialised_encoder,
)
from virnucpro_tui.models.esm.tokens import esm_alphabet
from virnucpro_tui.models.weights import (
    Shapes,
    bad_sizes,
    check_state,
    read_shapes,
    read_tensors,
    shapes_of,
)

HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
T = TypeVar("T")
_INV_FREQ = re.compile(r"(^|\.)(rot_emb|rotary_embeddings)\.inv_freq$")
_HF_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_HF_LAYER_PARTS = {
    "attention.self.query.": "self_attn.q_proj.",
    "attention.self.key.": "self_attn.k_proj.",
    "attention.self.value.": "self_attn.v_proj.",
    "attention.output.dense.": "self_attn.out_proj.",
    "attention.LayerNorm.": "self_attn_layer_norm.",
    "intermediate.dense.": "fc1.",
    "output.dense.": "fc2.",
    "LayerNorm.": "final_layer_norm.",
}
_HF_TOP = {
    "embeddings.word_embeddings.": "embed_tokens.",
    "encoder.emb_layer_norm_after.": "emb_layer_norm_after.",
}
_HF_IGNORED = ("pooler.", "contact_head.", "lm_head.", "embeddings.position_ids")


@dataclass(frozen=True)
class TransformersEsm:
    """A checked transformers ESM-2 directory: its shape and the weight files it reads."""

    directory: Path
    shape: EncoderShape
    weight_files: list[Path]


def transformers_dir(path: Path) -> Path | None:
    """The transformers directory named by ``path`` (itself or a file of it), else None."""
    if path.is_dir():
        directory = path
    elif (
        path.name == "config.json" or path.name in HF_WEIGHT_FILES or path.suffix == ".safetensors"
    ):
        directory = path.parent
    else:
        return None  # e.g. esm2_t36_3B_UR50D.pt: a fair-esm file, wherever it sits
    return directory if (directory / "config.json").is_file() else None


def check_transformers_dir(directory: Path) -> TransformersEsm:
    """Config, vocabulary, weight names and shapes, reading no tensor data."""
    shape = _shape_from_config(_read_config(directory))
    _check_vocab(directory)
    files = _weight_files(directory)
    found: Shapes = {}
    for file in files:
        found.update(read_shapes(file))
    state, _inv_freq = _to_fair_names(found)
    check_state(state, shapes_of(uninitialised_encoder(shape)), directory, "ESM-2")
    return TransformersEsm(directory, shape, files)


def encoder_from_transformers(checked: TransformersEsm) -> EsmEncoder:
    raw: dict[str, torch.Tensor] = {}
    for file in checked.weight_files:
        raw.update(read_tensors(file))
    state, inv_freq = _to_fair_names(raw)
    return encoder_with_weights(state, checked.directory, checked.shape, inv_freq)


def hf_to_fair_name(key: str) -> str | None:
    """fair-esm name of a transformers ESM parameter; None if not part of the encoder."""
    key = key.removeprefix("esm.")
    if key.startswith(_HF_IGNORED):
        return None
    for hf, fair in _HF_TOP.items():
        if key.startswith(hf):
            return _ln_param(fair + key[len(hf) :])
    match = _HF_LAYER.match(key)
    if match:
        index, rest = match.groups()
        for hf, fair in _HF_LAYER_PARTS.items():
            if rest.startswith(hf):
                return _ln_param(f"layers.{index}.{fair}{rest[len(hf) :]}")
    return key  # unknown: kept as is, so the key check reports it


def _ln_param(name: str) -> str:
    """LayerNorm gamma/beta (legacy names that transformers still writes) -> weight/bias."""
    if "layer_norm" in name:
        if name.endswith(".gamma"):
            return name[: -len("gamma")] + "weight"
        if name.endswith(".beta"):
            return name[: -len("beta")] + "bias"
    return name


def _to_fair_names(raw: Mapping[str, T]) -> tuple[dict[str, T], T | None]:
    """The encoder's entries under fair-esm names, and the first stored rotary table."""
    state: dict[str, T] = {}
    inv_freq: T | None = None
    for key in sorted(raw):
        if _INV_FREQ.search(key):
            inv_freq = raw[key] if inv_freq is None else inv_freq
            continue
        name = hf_to_fair_name(key)
        if name is not None:
            state[name] = raw[key]
    return state, inv_freq


# --- the files -----------------------------------------------------------------------------


def _read_config(directory: Path) -> dict[str, Any]:
    config_path = directory / "config.json"
    try:
        cfg = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path}: unreadable config ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != "esm":
        found = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise ModelError(f"{config_path}: not an ESM model (model_type {found!r})")
    problems = []
    if cfg.get("position_embedding_type", "absolute") != "rotary":
        problems.append(f"position_embedding_type {cfg.get('position_embedding_type')!r}")
    if cfg.get("emb_layer_norm_before"):
        problems.append("emb_layer_norm_before")
    if cfg.get("is_folding_model"):
        problems.append("an ESMFold model")
    if cfg.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act {cfg.get('hidden_act')!r}")
    alphabet = esm_alphabet()
    expected = {"vocab_size": len(alphabet), "pad_token_id": alphabet.padding_idx}
    expected["mask_token_id"] = alphabet.mask_idx
    problems += [f"{k} {cfg.get(k)!r}" for k, v in expected.items() if cfg.get(k, v) != v]
    if problems:
        raise ModelError(
            f"{config_path}: unexpected architecture ({', '.join(problems)}); expected a rotary ESM-2"
        )
    needed = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
    bad = bad_sizes({k: cfg.get(k) for k in needed}, "num_hidden_layers")
    if not bad and cfg["hidden_size"] % cfg["num_attention_heads"]:
        bad.append("hidden_size is not a multiple of num_attention_heads")
    if bad:
        raise ModelError(f"{config_path}: unexpected config ({', '.join(bad)})")
    cfg.setdefault("vocab_size", len(alphabet))
    return cfg


def _shape_from_config(cfg: dict[str, Any]) -> EncoderShape:
    return EncoderShape(
        cfg["num_hidden_layers"],
        cfg["hidden_size"],
        cfg["num_attention_heads"],
        ffn_dim=cfg["intermediate_size"],
        alphabet_size=cfg["vocab_size"],
        token_dropout=bool(cfg.get("token_dropout", False)),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
        rope_theta=_rope_theta(cfg),
    )


def _rope_theta(cfg: dict[str, Any]) -> float:
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(cfg.get("rope_theta", ROPE_THETA))


def _check_vocab(directory: Path) -> None:
    vocab_path = directory / "vocab.txt"
    if not vocab_path.is_file():
        return
    tokens = [t.strip() for t in vocab_path.read_text().splitlines() if t.strip()]
    if tokens != esm_alphabet().all_toks:
        raise ModelError(f"{vocab_path}: vocabulary differs from the ESM-2 alphabet")


def _weight_files(directory: Path) -> list[Path]:
    """The weight files to read: the first kind present, an index naming its shards."""
    for name in HF_WEIGHT_FILES:
        candidate = directory / name
        if candidate.is_file():
            return _shards(candidate) if name.endswith(".index.json") else [candidate]
    raise ModelError(f"{directory}: no ESM-2 weights (looked for {', '.join(HF_WEIGHT_FILES)})")


def _shards(index_path: Path) -> list[Path]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{index_path}: unreadable shard index ({exc})") from None
    outside = [n for n in names if not isinstance(n, str) or Path(n).name != n]
    if outside or not names:
        raise ModelError(f"{index_path}: shard names must be files in its directory")
    missing = [n for n in names if not (index_path.parent / n).is_file()]
    if missing:
        raise ModelError(f"{index_path}: shard {missing[0]} not found")
    return [index_path.parent / n for n in names]
