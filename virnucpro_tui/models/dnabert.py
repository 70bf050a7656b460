"""DNABERT-S (DNABERT-2 / MosaicBERT) in plain PyTorch, and its loader (docs/architecture.md#the-scientific-contract).

The module names mirror the upstream ``bert_layers.BertModel`` so that its state dict loads
as is: ALiBi attention through ``scaled_dot_product_attention`` with a float bias, a gated
(GLU) feed-forward and post-LN. No remote code, Triton or transformers is needed.
``check_dnabert`` runs every check of the loader without reading tensor data (pre-flight).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.device_copy import place
from virnucpro_tui.models.safe_load import has_demo_marker
from virnucpro_tui.models.weights import (
    bad_sizes,
    build_uninitialised,
    check_state,
    read_shapes,
    read_tensors,
    shapes_of,
)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Non-learned buffers some exports carry; they have no counterpart here.
_IGNORED_KEYS = frozenset({"embeddings.token_type_ids", "embeddings.position_ids"})
_ALIBI_CACHE_SIZE = 16
T = TypeVar("T")


@dataclass(frozen=True)
class DnabertConfig:
    """The fields of the upstream ``config.json`` that shape the network (defaults: DNABERT-S)."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 4096
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2
    alibi_starting_size: int = 512

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DnabertConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi head slopes (Press et al.), with the upstream workaround for non-powers of two."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


# --- the network; attribute names follow the upstream state dict -------------------------


class _Embeddings(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Token type ids are all 0; no position embeddings (ALiBi).
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.Wqkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)


class _SelfOutput(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class _Attention(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(cfg)
        self.output = _SelfOutput(cfg)


class _GluMlp(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.intermediate_size = cfg.intermediate_size
        self.gated_layers = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.wo = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gated_layers(x).split(self.intermediate_size, dim=-1)
        return self.layernorm(self.wo(F.gelu(gate) * up) + x)


class _Layer(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.attention = _Attention(cfg)
        self.mlp = _GluMlp(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        qkv = self.attention.self.Wqkv(x).view(b, t, 3, self.heads, h // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, T, head_dim]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        a = a.transpose(1, 2).reshape(b, t, h)
        out = self.attention.output
        x = out.LayerNorm(out.dense(a) + x)
        return self.mlp(x)


class _Encoder(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(cfg) for _ in range(cfg.num_hidden_layers))


class _Pooler(nn.Module):
    def __init__(self, cfg: DnabertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)


class DnabertModel(nn.Module):
    """The DNABERT-2 encoder. ``forward`` returns the last hidden layer [B, T, H]."""

    def __init__(self, cfg: DnabertConfig, with_pooler: bool = True) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        self.cfg = cfg
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)
        self.pooler = _Pooler(cfg) if with_pooler else None  # loaded if present, unused
        self.slopes = alibi_slopes(cfg.num_attention_heads)
        self._alibi: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def alibi(self, t: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Symmetric ALiBi bias ``-slope * |i - j|`` [1, heads, T, T], cached per (T, device, dtype)."""
        key = (t, device, dtype)
        bias = self._alibi.get(key)
        if bias is None:
            # A normal tensor even under inference_mode, so later autograd use is allowed.
            with torch.inference_mode(False), torch.no_grad():
                pos = torch.arange(t, device=device)
                dist = (pos[None, :] - pos[:, None]).abs().to(torch.float32)
                slopes = torch.tensor(self.slopes, dtype=torch.float32, device=device)
                bias = (-slopes[:, None, None] * dist).unsqueeze(0).to(dtype)
            if len(self._alibi) >= _ALIBI_CACHE_SIZE:
                self._alibi.pop(next(iter(self._alibi)))
            self._alibi[key] = bias
        return bias

    def attention_bias(self, t: int, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """ALiBi plus -inf on padded keys: [B or 1, heads, T, T]. Rows need one real token."""
        device = self.embeddings.word_embeddings.weight.device
        bias = self.alibi(t, device, dtype)
        if mask is None:
            return bias
        pad = torch.zeros(mask.shape, dtype=dtype, device=device)
        pad.masked_fill_(~mask.to(device=device, dtype=torch.bool), float("-inf"))
        return bias + pad[:, None, None, :]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.embeddings(input_ids)
        bias = self.attention_bias(input_ids.shape[1], attention_mask, x.dtype)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x


# --- bundle and loader -------------------------------------------------------------------


def _lengths_to_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


@dataclass
class DnabertBundle:
    """A loaded DNABERT-S: network, tokenizer and provenance."""

    model: DnabertModel
    tokenizer: Any  # tokenizers.Tokenizer
    config: DnabertConfig
    source: Path
    demo: bool = False

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.token_to_id("[PAD]"))

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def device(self) -> torch.device:
        return self.model.embeddings.word_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embeddings.word_embeddings.weight.dtype

    def to(
        self, device: torch.device | str, dtype: torch.dtype | None = None, staged: bool = False
    ) -> DnabertBundle:
        """Onto ``device`` in ``dtype``; ``staged``: through page-locked buffers."""
        place(self.model, device, dtype, staged)
        return self

    def tokenize(self, seqs: Sequence[str]) -> list[list[int]]:
        """Token ids with [CLS] ... [SEP], no truncation (docs/architecture.md#the-scientific-contract)."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(seqs))]

    def collate(self, token_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids [B, T] and a bool mask [B, T] (on the CPU)."""
        t = max(len(toks) for toks in token_lists)
        ids = torch.full((len(token_lists), t), self.pad_id, dtype=torch.long)
        for row, toks in enumerate(token_lists):
            ids[row, : len(toks)] = torch.as_tensor(toks, dtype=torch.long)
        lengths = torch.tensor([len(toks) for toks in token_lists])
        return ids, _lengths_to_mask(lengths, t)

    @torch.inference_mode()
    def forward_pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden layer over all real tokens, [CLS]/[SEP] included: [B, H] fp32.

        ``attention_mask`` is [B, T] (1/True = real token) or, as a shortcut, lengths [B].
        """
        device = self.device
        input_ids = input_ids.to(device, non_blocking=True)
        mask = attention_mask.to(device, non_blocking=True)
        mask = _lengths_to_mask(mask, input_ids.shape[1]) if mask.dim() == 1 else mask.bool()
        hidden = self.model(input_ids, mask)
        summed = hidden.float().masked_fill(~mask[..., None], 0.0).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp_min(1).float()


@torch.inference_mode()
def embed_dna_published(bundle: DnabertBundle, seqs: Sequence[str]) -> torch.Tensor:
    """The published settings: one sequence at a time, no mask, ``hidden.mean(dim=1)``: [N, H] fp32."""
    out = []
    for ids in bundle.tokenize(seqs):
        input_ids = torch.tensor([ids], dtype=torch.long, device=bundle.device)
        out.append(bundle.model(input_ids).mean(dim=1)[0].float())
    if not out:
        return torch.empty(0, bundle.hidden_size)
    return torch.stack(out).cpu()


def model_dir(path: Path) -> Path:
    """A model directory, a file inside it, or a Hugging Face cache repo (models--org--name)."""
    if not path.exists():
        raise ModelError(f"{path}: DNABERT-S model not found (no such file or directory)")
    root = path if path.is_dir() else path.parent
    snapshots = root / "snapshots"
    if not any((root / n).is_file() for n in WEIGHT_FILES) and snapshots.is_dir():
        ref = root / "refs" / "main"
        if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
            return snapshots / ref.read_text().strip()
        candidates = sorted(p for p in snapshots.iterdir() if p.is_dir())
        if len(candidates) == 1:
            return candidates[0]
    return root


def _read_config(root: Path) -> DnabertConfig:
    path = root / "config.json"
    if not path.is_file():
        return DnabertConfig()
    try:
        data = json.loads(path.read_text())
        cfg = DnabertConfig.from_dict(data)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: not a valid DNABERT-S config.json ({exc})") from None
    sizes = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.type == "int"}
    bad = bad_sizes(sizes, "num_hidden_layers")
    if bad:
        raise ModelError(f"{path}: not a valid DNABERT-S config.json ({', '.join(bad)})")
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ModelError(f"{path}: hidden_size is not a multiple of num_attention_heads")
    return cfg


def _weights_file(root: Path) -> Path:
    for name in WEIGHT_FILES:
        if (root / name).is_file():
            return root / name
    raise ModelError(f"{root}: no DNABERT-S weights (expected {' or '.join(WEIGHT_FILES)})")


def normalise_keys(state: Mapping[str, T]) -> dict[str, T]:
    """Drop a ``bert.`` prefix, the ``cls.*`` MLM head and non-learned buffers."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        if key.startswith("cls.") or key in _IGNORED_KEYS:
            continue
        out[key] = value
    return out


def _load_tokenizer(root: Path, cfg: DnabertConfig) -> Any:
    from tokenizers import Tokenizer

    path = root / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{root}: no tokenizer.json next to the DNABERT-S weights")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read the tokenizer ({exc})") from exc
    tok.no_truncation()
    tok.no_padding()
    cls_id, sep_id, pad_id = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    if None in (cls_id, sep_id, pad_id):
        raise ModelError(f"{path}: the tokenizer lacks [CLS], [SEP] or [PAD]")
    probe = tok.encode("ACGT").ids
    if not probe or probe[0] != cls_id or probe[-1] != sep_id:
        raise ModelError(f"{path}: the tokenizer does not add [CLS] ... [SEP]")
    if tok.get_vocab_size() > cfg.vocab_size:
        raise ModelError(
            f"{path}: {tok.get_vocab_size()} tokens, more than the model's vocab_size {cfg.vocab_size}"
        )
    return tok


@dataclass(frozen=True)
class DnabertFiles:
    """A checked DNABERT-S directory: config, the tokenizer (loaded), the weights file."""

    root: Path
    config: DnabertConfig
    tokenizer: Any  # tokenizers.Tokenizer
    weights: Path
    with_pooler: bool


def uninitialised_model(cfg: DnabertConfig, with_pooler: bool) -> DnabertModel:
    return build_uninitialised(lambda: DnabertModel(cfg, with_pooler))


def check_dnabert(path: str | Path) -> DnabertFiles:
    """Config, weight names and shapes, and the tokenizer, reading no tensor data."""
    root = model_dir(Path(path).expanduser())
    cfg = _read_config(root)
    weights = _weights_file(root)
    found = normalise_keys(read_shapes(weights))
    with_pooler = "pooler.dense.weight" in found
    check_state(found, shapes_of(uninitialised_model(cfg, with_pooler)), weights, "DNABERT-S")
    return DnabertFiles(root, cfg, _load_tokenizer(root, cfg), weights, with_pooler)


def load_dnabert(path: str | Path) -> DnabertBundle:
    """Load DNABERT-S from a directory (or a file in it) on the CPU in fp32, in eval mode."""
    checked = check_dnabert(path)
    state = normalise_keys(read_tensors(checked.weights))
    model = uninitialised_model(checked.config, checked.with_pooler)
    check_state(shapes_of(state), shapes_of(model), checked.weights, "DNABERT-S")
    model.load_state_dict(state, strict=True, assign=True)
    # inference only, as ESM-2: the graphs a stub compiles beside fit this model
    model.float().eval().requires_grad_(False)
    return DnabertBundle(
        model, checked.tokenizer, checked.config, checked.root, has_demo_marker(checked.root)
    )
