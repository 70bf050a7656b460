"""fair-esm checkpoints (``esm2_t36_3B_UR50D.pt`` and its ``-contact-regression.pt``): reading
and checking them as data, the one writer of the format, and fair-esm's own module with the
published extraction, as the reference (docs/architecture.md#the-scientific-contract).

The released layout: ``{"model": {"encoder.sentence_encoder.<name>", "encoder.lm_head.<name>"},
"cfg": {"model": Namespace}}``; the regression file holds ``{"model": {"contact_head.*"}}``."""

from __future__ import annotations

import re
import warnings
from argparse import Namespace
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import esm
import torch
from esm.data import Alphabet

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.esm.encoder import (
    EncoderShape,
    EsmEncoder,
    encoder_with_weights,
    uninitialised_encoder,
)
from virnucpro_tui.models.esm.tokens import TRUNCATION, esm_alphabet
from virnucpro_tui.models.safe_load import first_line, torch_load_safely
from virnucpro_tui.models.weights import (
    Shapes,
    SkipWeightInit,
    bad_sizes,
    check_state,
    shapes_of,
    tensor_dict,
)

# fair-esm's upgrade_state_dict: the fairseq prefixes it strips from the stored names.
_FAIRSEQ_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
_CFG_NEEDED = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")
LM_HEAD, CONTACT_HEAD, INV_FREQ = "lm_head.", "contact_head.", "self_attn.rot_emb.inv_freq"


@dataclass
class FairEsmCheckpoint:
    """A checked fair-esm ESM-2 checkpoint: memory-mapped tensors under fair-esm's module names."""

    path: Path
    shape: EncoderShape
    state: dict[str, torch.Tensor]
    data: dict[str, Any]  # the file as loaded, for fair-esm's own loader
    regression: dict[str, Any] | None  # the contact-regression file as loaded, if present


def regression_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-contact-regression.pt")


def read_fair_checkpoint(path: Path) -> FairEsmCheckpoint:
    """Load a fair-esm checkpoint (and its regression file) weights-only and memory-mapped, and
    check its structure, names and shapes. Touches no tensor data."""
    data = torch_load_safely(path)
    shape = _shape_from_cfg(path, data)
    stored = tensor_dict(path, data["model"])
    state = {_FAIRSEQ_PREFIX.sub("", key): value for key, value in stored.items()}
    check_state(shapes_of(state), fair_esm_shapes(shape), path, "ESM-2")
    regression = _read_regression(regression_path(path), shape)
    return FairEsmCheckpoint(path, shape, state, data, regression)


def fair_esm_shapes(shape: EncoderShape, contact_head: bool = False) -> Shapes:
    """Names and shapes of fair-esm's ``ESM2`` state dict: the encoder's, plus the rotary tables,
    the LM head and (with ``contact_head``) the contact-regression head."""
    encoder = uninitialised_encoder(shape)
    out = shapes_of(encoder)
    rotary = tuple(encoder.rotary.inv_freq.shape)
    out |= {f"layers.{i}.{INV_FREQ}": rotary for i in range(shape.num_layers)}
    d, vocab = shape.embed_dim, shape.alphabet_size
    out |= {f"{LM_HEAD}weight": (vocab, d), f"{LM_HEAD}bias": (vocab,)}
    out |= {f"{LM_HEAD}dense.weight": (d, d), f"{LM_HEAD}dense.bias": (d,)}
    out |= {f"{LM_HEAD}layer_norm.weight": (d,), f"{LM_HEAD}layer_norm.bias": (d,)}
    if contact_head:
        out |= _contact_head_shapes(shape)
    return out


def _contact_head_shapes(shape: EncoderShape) -> Shapes:
    inputs = shape.num_layers * shape.attention_heads
    return {f"{CONTACT_HEAD}regression.weight": (1, inputs), f"{CONTACT_HEAD}regression.bias": (1,)}


def _shape_from_cfg(path: Path, data: Any) -> EncoderShape:
    cfg = _fair_esm_cfg(path, data)
    layers, dim, heads = cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads
    sizes = {"encoder_layers": layers, "encoder_embed_dim": dim, "encoder_attention_heads": heads}
    bad = bad_sizes(sizes, "encoder_layers")
    if not bad and dim % heads:
        bad.append(f"encoder_embed_dim {dim} is not a multiple of {heads} heads")
    if bad:
        raise ModelError(f"{path}: not an ESM-2 checkpoint (cfg {', '.join(bad)})")
    # fair-esm's ESM2 ignores encoder_ffn_embed_dim: its feed-forward is always 4 x embed_dim.
    return EncoderShape(
        layers,
        dim,
        heads,
        ffn_dim=4 * dim,
        alphabet_size=len(esm_alphabet()),
        token_dropout=bool(cfg.token_dropout),
    )


def _fair_esm_cfg(path: Path, data: Any) -> Namespace:
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelError(f"{path}: not an ESM checkpoint (no 'model' weights)")
    cfg = data.get("cfg")
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if model_cfg is None:
        if "args" in data:
            arch = getattr(data["args"], "arch", "?")
            raise ModelError(f"{path}: an ESM-1 checkpoint (arch {arch}), not ESM-2")
        raise ModelError(f"{path}: not an ESM-2 checkpoint (no cfg['model'] section)")
    if isinstance(model_cfg, dict):
        model_cfg = Namespace(**model_cfg)
    missing = [k for k in _CFG_NEEDED if not hasattr(model_cfg, k)]
    if missing:
        raise ModelError(f"{path}: not an ESM-2 checkpoint (cfg lacks {', '.join(missing)})")
    data["cfg"]["model"] = model_cfg
    return model_cfg


def _read_regression(path: Path, shape: EncoderShape) -> dict[str, Any] | None:
    if not path.is_file():
        return None  # optional: contacts are not used here
    data = torch_load_safely(path)
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelError(f"{path}: not an ESM contact-regression file (no 'model' weights)")
    found = shapes_of(tensor_dict(path, data["model"]))
    check_state(found, _contact_head_shapes(shape), path, "the ESM-2 contact head")
    return data


# --- building ------------------------------------------------------------------------------


def encoder_from_fair(
    checkpoint: FairEsmCheckpoint, dtype: torch.dtype = torch.float32
) -> EsmEncoder:
    """Our EsmEncoder on the checkpoint's tensors (fair-esm's module is not built)."""
    state = {
        k: v for k, v in checkpoint.state.items() if not k.startswith(LM_HEAD) and INV_FREQ not in k
    }
    inv_freq = checkpoint.state[f"layers.0.{INV_FREQ}"]  # a checkpoint has at least one layer
    return encoder_with_weights(state, checkpoint.path, checkpoint.shape, inv_freq, dtype)


def load_fair_esm_reference(path: str | Path) -> tuple[esm.model.esm2.ESM2, Alphabet]:
    """fair-esm's own ESM2 module (eval, fp32, CPU) from a fair-esm checkpoint file, built by
    fair-esm's loader without random initialisation (the weights are loaded over it)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ESM-2 checkpoint file not found")
    checkpoint = read_fair_checkpoint(path)
    name = path.stem if path.stem.startswith("esm2") else f"esm2_{path.stem}"
    try:
        with warnings.catch_warnings():  # no regression file: contacts are not used here
            warnings.filterwarnings("ignore", message="Regression weights not found")
            with SkipWeightInit():
                model, alphabet = esm.pretrained.load_model_and_alphabet_core(
                    name, checkpoint.data, checkpoint.regression
                )
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: fair-esm cannot build it ({first_line(exc)})") from None
    return model.float().eval(), alphabet


def embed_proteins_published(
    esm2_module: esm.model.esm2.ESM2,
    alphabet: Alphabet,
    seqs: Sequence[str],
    toks_per_batch: int = 2048,
    truncation_seq_length: int = TRUNCATION,
) -> torch.Tensor:
    """The published tool's extraction: length-sorted token batches, fair-esm forward, mean over
    residues 1..min(truncation, len). Returned in input order, float32, on the CPU."""
    dataset = esm.data.FastaBatchedDataset([str(i) for i in range(len(seqs))], list(seqs))
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    converter = alphabet.get_batch_converter(truncation_seq_length)
    layer = esm2_module.num_layers
    device = next(esm2_module.parameters()).device
    out: list[torch.Tensor | None] = [None] * len(seqs)
    with torch.no_grad():
        for batch in batches:
            _, strs, toks = converter([dataset[i] for i in batch])
            result = esm2_module(toks.to(device), repr_layers=[layer], return_contacts=False)
            reps = result["representations"][layer].to("cpu")
            for row, index in enumerate(batch):
                n = min(truncation_seq_length, len(strs[row]))
                out[index] = reps[row, 1 : n + 1].mean(0).float()
    return torch.stack([t for t in out if t is not None]) if seqs else torch.empty(0)


# --- writing -------------------------------------------------------------------------------


def write_fair_esm_checkpoint(
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    shape: EncoderShape,
    *,
    dtype: torch.dtype | None = None,
    regression: bool = True,
) -> Path:
    """Write tensors named as in fair-esm's ``ESM2`` in the released layout (see the module
    docstring): the model file and, with ``regression``, ``<stem>-contact-regression.pt`` next
    to it. Each tensor is written once, in its own storage; none is copied unless ``dtype``
    converts it or it shares storage (the tied LM-head weight)."""
    path = Path(path)
    weights: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        storage = value.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() != value.nbytes:
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        if key.startswith(CONTACT_HEAD):
            head[key] = value
        elif key.startswith(LM_HEAD):
            weights[f"encoder.{key}"] = value
        else:
            weights[f"encoder.sentence_encoder.{key}"] = value
    torch.save({"model": weights, "cfg": {"model": _cfg(shape)}}, path)
    if regression:
        torch.save({"model": head}, regression_path(path))
    return path


def save_fair_esm_checkpoint(
    model: esm.model.esm2.ESM2,
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    regression: bool = True,
) -> Path:
    """``write_fair_esm_checkpoint`` for a fair-esm ``ESM2`` module (demo models, tests, bench)."""
    shape = EncoderShape(
        model.num_layers,
        model.embed_dim,
        model.attention_heads,
        ffn_dim=4 * model.embed_dim,
        alphabet_size=model.alphabet_size,
        token_dropout=model.token_dropout,
    )
    return write_fair_esm_checkpoint(
        model.state_dict(), path, shape, dtype=dtype, regression=regression
    )


def _cfg(shape: EncoderShape) -> Namespace:
    """The fairseq model config fields that fair-esm reads (plus a few for realism)."""
    return Namespace(
        _name="esm2",
        arch="esm2",
        encoder_layers=shape.num_layers,
        encoder_embed_dim=shape.embed_dim,
        encoder_ffn_embed_dim=shape.ffn_dim,
        encoder_attention_heads=shape.attention_heads,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_positions=1024,
        token_dropout=shape.token_dropout,
    )
