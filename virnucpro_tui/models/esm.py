"""ESM-2 protein embeddings (docs/architecture.md#the-scientific-contract).

``EsmEncoder`` is a compact ESM-2 whose parameter names equal fair-esm's ``ESM2``, so it loads
fair-esm weights directly. It runs attention through ``scaled_dot_product_attention`` (a
boolean key-padding mask only when the batch has padding) and works in fp32, bf16 and fp16.
``load_esm`` reads a fair-esm checkpoint (through fair-esm itself) or a transformers ESM
directory; ``embed_proteins_published`` reproduces the published tool's extraction on
fair-esm's own module, as the reference and the "published settings" baseline."""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from argparse import Namespace
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import esm
import torch
import torch.nn.functional as F
from esm.data import Alphabet
from torch import nn

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.safe_load import has_demo_marker, model_checksum, torch_load_safely

ALPHABET_ARCH = "ESM-1b"
TRUNCATION = 1024
MASK_RATIO_TRAIN = 0.15 * 0.8  # the token-dropout ratio of all ESM training runs
LAYER_NORM_EPS = 1e-5  # fair-esm's ESM1bLayerNorm is torch's LayerNorm (or apex's), eps 1e-5
ROPE_THETA = 10000.0
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_INV_FREQ = re.compile(r"(^|\.)(rot_emb|rotary_embeddings)\.inv_freq$")


# --- the encoder -----------------------------------------------------------------------------


def rotary_inv_freq(head_dim: int, base: float = ROPE_THETA) -> torch.Tensor:
    """fair-esm's (and transformers') inverse frequencies, fp32."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))


class RotaryEmbedding(nn.Module):
    """Rotary tables as fair-esm builds them; ``inv_freq`` stays fp32 whatever the module dtype."""

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, base: float = ROPE_THETA) -> None:
        super().__init__()
        self.register_buffer("inv_freq", rotary_inv_freq(head_dim, base), persistent=False)

    def set_inv_freq(self, inv_freq: torch.Tensor) -> None:
        # Checkpoints may hold rounded (fp16) values; fair-esm uses them as stored, so do we.
        self.inv_freq = inv_freq.detach().to(device=self.inv_freq.device, dtype=torch.float32)

    def _apply(self, fn: Any, recurse: bool = True) -> RotaryEmbedding:
        exact = self.inv_freq
        super()._apply(fn, recurse)
        self.inv_freq = exact.to(device=self.inv_freq.device)  # follow the device, keep fp32
        return self

    def tables(self, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(length, device=self.inv_freq.device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        q = apply_rotary(self._heads(self.q_proj(x) * self.scaling), cos, sin)
        k = apply_rotary(self._heads(self.k_proj(x)), cos, sin)
        v = self._heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer with fair-esm's ``TransformerLayer`` parameter names."""

    def __init__(self, embed_dim: int, ffn_dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.self_attn = SelfAttention(embed_dim, num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim, eps=eps)
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim, eps=eps)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), cos, sin, mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))  # exact (erf) GELU


class EsmEncoder(nn.Module):
    """ESM-2 up to ``emb_layer_norm_after``: returns fair-esm's ``representations[num_layers]``."""

    def __init__(
        self,
        num_layers: int,
        embed_dim: int,
        attention_heads: int,
        *,
        ffn_dim: int | None = None,
        alphabet_size: int = 33,
        padding_idx: int = 1,
        mask_idx: int = 32,
        token_dropout: bool = True,
        layer_norm_eps: float = LAYER_NORM_EPS,
        rope_theta: float = ROPE_THETA,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.embed_dim = embed_dim
        self.attention_heads = attention_heads
        self.padding_idx = padding_idx
        self.mask_idx = mask_idx
        self.token_dropout = token_dropout
        ffn_dim = ffn_dim or 4 * embed_dim
        self.embed_tokens = nn.Embedding(alphabet_size, embed_dim, padding_idx=padding_idx)
        self.layers = nn.ModuleList(
            EncoderLayer(embed_dim, ffn_dim, attention_heads, layer_norm_eps)
            for _ in range(num_layers)
        )
        self.emb_layer_norm_after = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.rotary = RotaryEmbedding(embed_dim // attention_heads, rope_theta)

    def embed(self, tokens: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Token embeddings with fair-esm's inference-time token-dropout rescale and zeroed padding."""
        x = self.embed_tokens(tokens)
        if self.token_dropout:
            is_mask = tokens == self.mask_idx
            x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
            src_lengths = (~padding_mask).sum(-1)
            observed = (is_mask.sum(-1).float() / src_lengths).to(x.dtype)
            x = x * (1 - MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
        return x * (1 - padding_mask.unsqueeze(-1).type_as(x))

    def forward(self, tokens: torch.Tensor, has_padding: bool | None = None) -> torch.Tensor:
        """Final hidden states [B, T, D]. ``has_padding`` (if known on the host) saves a sync."""
        padding_mask = tokens.eq(self.padding_idx)
        x = self.embed(tokens, padding_mask)
        if has_padding is None:
            has_padding = bool(padding_mask.any())
        # Boolean mask only when needed: True = may attend. Without it SDPA can use flash kernels.
        mask = ~padding_mask[:, None, None, :] if has_padding else None
        cos, sin = self.rotary.tables(tokens.shape[1], x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.emb_layer_norm_after(x)


def mean_pool(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over positions 1..len of each row (BOS, EOS, padding excluded), fp32 accumulation."""
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    lengths = lengths.to(hidden.device)
    keep = (positions[None, :] >= 1) & (positions[None, :] <= lengths[:, None])
    summed = hidden.float().masked_fill(~keep[..., None], 0.0).sum(dim=1)
    return summed / lengths.clamp_min(1)[:, None].float()


# --- the bundle ------------------------------------------------------------------------------


@dataclass
class EsmBundle:
    encoder: EsmEncoder
    alphabet: Alphabet
    num_layers: int
    embed_dim: int
    source: Path
    format: str  # "fair-esm" | "transformers"
    demo: bool

    @property
    def sha256(self) -> str:
        """Checksum of the model file (or directory), computed on first use and cached."""
        return model_checksum(self.source)

    @property
    def device(self) -> torch.device:
        return self.encoder.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.embed_tokens.weight.dtype

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> EsmBundle:
        self.encoder.to(device=device, dtype=dtype)
        return self

    def tokenize(
        self, seqs: Sequence[str], truncation_seq_length: int = TRUNCATION
    ) -> list[list[int]]:
        """BOS + residues (truncated) + EOS, the ids of fair-esm's batch converter."""
        bos, eos = self.alphabet.cls_idx, self.alphabet.eos_idx
        return [[bos, *self._encode(s)[:truncation_seq_length], eos] for s in seqs]

    def _encode(self, seq: str) -> list[int]:
        table = self.alphabet.tok_to_idx
        try:
            return [table[c] for c in seq]  # fast path: one token per character
        except KeyError:
            pass
        try:
            return self.alphabet.encode(seq)
        except KeyError as exc:
            raise ValueError(
                f"protein sequence has a character ESM-2 cannot encode: {exc}"
            ) from None

    def pad(self, token_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded LongTensor[B, T] and residue counts LongTensor[B] (CPU)."""
        width = max(len(t) for t in token_lists)
        tokens = torch.full((len(token_lists), width), self.alphabet.padding_idx, dtype=torch.long)
        for row, ids in enumerate(token_lists):
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        lengths = torch.tensor([len(t) - 2 for t in token_lists], dtype=torch.long)
        return tokens, lengths

    def forward_pooled(
        self, tokens: torch.Tensor, lengths: torch.Tensor, has_padding: bool | None = None
    ) -> torch.Tensor:
        """Mean final representation over residues 1..len, float32 [B, D], on the model's device.

        Pass ``has_padding`` when it is known on the host, so a GPU batch needs no sync."""
        if has_padding is None:
            has_padding = bool((lengths + 2 < tokens.shape[1]).any())
        with torch.inference_mode():
            hidden = self.encoder(tokens.to(self.device, non_blocking=True), has_padding)
            return mean_pool(hidden, lengths)

    def embed(self, seqs: Sequence[str], truncation_seq_length: int = TRUNCATION) -> torch.Tensor:
        """Convenience: tokenize, pad and pool one batch of proteins."""
        tokens, lengths = self.pad(self.tokenize(seqs, truncation_seq_length))
        return self.forward_pooled(tokens, lengths)


# --- loading ---------------------------------------------------------------------------------


def load_esm(path: str | Path) -> EsmBundle:
    """Load ESM-2 on the CPU in fp32 from a fair-esm checkpoint file or a transformers directory."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: ESM-2 model not found")
    hf_dir = _transformers_dir(path)
    if hf_dir is not None:
        encoder = _load_transformers(hf_dir)
        source, fmt = hf_dir, "transformers"
    elif path.is_dir() or path.suffix == ".safetensors":
        raise ModelError(f"{path}: not an ESM-2 model directory (no config.json)")
    else:
        encoder = _encoder_from_fair(_build_fair_esm(path), path)
        source, fmt = path, "fair-esm"
    encoder.eval().requires_grad_(False)
    return EsmBundle(
        encoder=encoder,
        alphabet=Alphabet.from_architecture(ALPHABET_ARCH),
        num_layers=encoder.num_layers,
        embed_dim=encoder.embed_dim,
        source=source,
        format=fmt,
        demo=has_demo_marker(source),
    )


def load_fair_esm_reference(path: str | Path) -> tuple[esm.model.esm2.ESM2, Alphabet]:
    """fair-esm's own ESM2 module (eval, fp32, CPU) from a fair-esm checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ESM-2 checkpoint file not found")
    model = _build_fair_esm(path)
    return model.eval(), model.alphabet


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


# --- fair-esm checkpoints --------------------------------------------------------------------


def save_fair_esm_checkpoint(
    model: esm.model.esm2.ESM2,
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    regression: bool = True,
) -> Path:
    """Write an ESM2 module in the layout of fair-esm's released ESM-2 files: ``{"model":
    {"encoder.sentence_encoder.<name>", "encoder.lm_head.<name>"}, "cfg": {"model": Namespace}}``
    and, with ``regression``, ``<stem>-contact-regression.pt`` next to it (demo models, tests)."""
    path = Path(path)
    weights: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu", copy=True)
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        if key.startswith("contact_head."):
            head[key] = value
        elif key.startswith("lm_head."):
            weights[f"encoder.{key}"] = value
        else:
            weights[f"encoder.sentence_encoder.{key}"] = value
    cfg = Namespace(
        _name="ESM2",
        encoder_layers=model.num_layers,
        encoder_embed_dim=model.embed_dim,
        encoder_ffn_embed_dim=4 * model.embed_dim,
        encoder_attention_heads=model.attention_heads,
        token_dropout=model.token_dropout,
        max_positions=1024,
    )
    torch.save({"model": weights, "cfg": {"model": cfg}}, path)
    if regression:
        torch.save({"model": head}, path.with_name(f"{path.stem}-contact-regression.pt"))
    return path


def _build_fair_esm(path: Path) -> esm.model.esm2.ESM2:
    """Read a fair-esm checkpoint safely and build fair-esm's ESM2 from it (CPU, fp32)."""
    data = torch_load_safely(path)
    cfg = _fair_esm_cfg(path, data)
    data["cfg"]["model"] = cfg
    regression = None
    regression_path = path.with_name(f"{path.stem}-contact-regression.pt")
    if regression_path.is_file():
        regression = torch_load_safely(regression_path)
        if not isinstance(regression, dict) or not isinstance(regression.get("model"), dict):
            raise ModelError(f"{regression_path}: not an ESM contact-regression file")
    name = path.stem if path.stem.startswith("esm2") else f"esm2_{path.stem}"
    try:
        with warnings.catch_warnings():  # no regression file: contacts are not used here
            warnings.filterwarnings("ignore", message="Regression weights not found")
            with _skip_random_init():  # the weights are overwritten by the checkpoint anyway
                model, _ = esm.pretrained.load_model_and_alphabet_core(name, data, regression)
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: wrong key set for ESM-2 ({_summary(exc)})") from None
    return model.float().eval()


@contextlib.contextmanager
def _skip_random_init() -> Iterator[None]:
    """Build modules without random initialisation (minutes of CPU for a 3B model)."""
    names = (
        "uniform_",
        "normal_",
        "kaiming_uniform_",
        "xavier_uniform_",
        "zeros_",
        "ones_",
        "constant_",
    )
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


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
    needed = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")
    missing = [k for k in needed if not hasattr(model_cfg, k)]
    if missing:
        raise ModelError(f"{path}: not an ESM-2 checkpoint (cfg lacks {', '.join(missing)})")
    return model_cfg


def _encoder_from_fair(model: esm.model.esm2.ESM2, path: Path) -> EsmEncoder:
    """Share fair-esm's tensors with a new EsmEncoder (no copy)."""
    first = model.layers[0] if len(model.layers) else None
    if first is None or first.self_attn.rot_emb is None:
        raise ModelError(f"{path}: unexpected architecture (not a rotary ESM-2)")
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith(("lm_head.", "contact_head.")) and not _INV_FREQ.search(k)
    }
    encoder = _new_encoder(
        model.num_layers,
        model.embed_dim,
        model.attention_heads,
        ffn_dim=first.fc1.out_features,
        alphabet_size=model.alphabet_size,
        token_dropout=model.token_dropout,
    )
    _assign(encoder, state, path)
    encoder.rotary.set_inv_freq(first.self_attn.rot_emb.inv_freq)
    return encoder


# --- transformers directories ----------------------------------------------------------------


def _transformers_dir(path: Path) -> Path | None:
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


def _load_transformers(directory: Path) -> EsmEncoder:
    cfg = _read_hf_config(directory)
    _check_hf_vocab(directory)
    raw = _read_hf_weights(directory)
    state, inv_freq = _map_hf_state(directory, raw)
    encoder = _new_encoder(
        cfg["num_hidden_layers"],
        cfg["hidden_size"],
        cfg["num_attention_heads"],
        ffn_dim=cfg["intermediate_size"],
        alphabet_size=cfg["vocab_size"],
        token_dropout=bool(cfg.get("token_dropout", False)),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
        rope_theta=_rope_theta(cfg),
    )
    _assign(encoder, state, directory)
    if inv_freq is not None:
        encoder.rotary.set_inv_freq(inv_freq)
    return encoder


def _read_hf_config(directory: Path) -> dict[str, Any]:
    config_path = directory / "config.json"
    try:
        cfg = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path}: unreadable config ({exc})") from None
    if cfg.get("model_type") != "esm":
        raise ModelError(f"{config_path}: not an ESM model (model_type {cfg.get('model_type')!r})")
    problems = []
    if cfg.get("position_embedding_type", "absolute") != "rotary":
        problems.append(f"position_embedding_type {cfg.get('position_embedding_type')!r}")
    if cfg.get("emb_layer_norm_before"):
        problems.append("emb_layer_norm_before")
    if cfg.get("is_folding_model"):
        problems.append("an ESMFold model")
    if cfg.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act {cfg.get('hidden_act')!r}")
    alphabet = Alphabet.from_architecture(ALPHABET_ARCH)
    expected = {"vocab_size": len(alphabet), "pad_token_id": alphabet.padding_idx}
    expected["mask_token_id"] = alphabet.mask_idx
    problems += [f"{k} {cfg.get(k)!r}" for k, v in expected.items() if cfg.get(k, v) != v]
    if problems:
        raise ModelError(
            f"{config_path}: unexpected architecture ({', '.join(problems)}); expected a rotary ESM-2"
        )
    needed = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
    missing = [k for k in needed if k not in cfg]
    if missing:
        raise ModelError(f"{config_path}: config lacks {', '.join(missing)}")
    cfg.setdefault("vocab_size", len(alphabet))
    return cfg


def _rope_theta(cfg: dict[str, Any]) -> float:
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(cfg.get("rope_theta", ROPE_THETA))


def _check_hf_vocab(directory: Path) -> None:
    vocab_path = directory / "vocab.txt"
    if not vocab_path.is_file():
        return
    tokens = [t.strip() for t in vocab_path.read_text().splitlines() if t.strip()]
    if tokens != Alphabet.from_architecture(ALPHABET_ARCH).all_toks:
        raise ModelError(f"{vocab_path}: vocabulary differs from the ESM-2 alphabet")


def _read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    for name in HF_WEIGHT_FILES:
        candidate = directory / name
        if not candidate.is_file():
            continue
        if name.endswith(".index.json"):
            return _read_sharded(candidate)
        return _read_weight_file(candidate)
    raise ModelError(f"{directory}: no ESM-2 weights (looked for {', '.join(HF_WEIGHT_FILES)})")


def _read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    data = torch_load_safely(path)
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a state dict")
    return data


def _read_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{index_path}: unreadable shard index ({exc})") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state.update(_read_weight_file(index_path.parent / shard))
    return state


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


def _map_hf_state(
    directory: Path, raw: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    state: dict[str, torch.Tensor] = {}
    inv_freq: torch.Tensor | None = None
    for key in sorted(raw):
        if _INV_FREQ.search(key):
            inv_freq = raw[key] if inv_freq is None else inv_freq
            continue
        name = hf_to_fair_name(key)
        if name is not None:
            state[name] = raw[key]
    return state, inv_freq


# --- shared helpers --------------------------------------------------------------------------


def _new_encoder(num_layers: int, embed_dim: int, heads: int, **kwargs: Any) -> EsmEncoder:
    """An encoder with uninitialised storage (untouched pages cost nothing): the weights are
    assigned, not copied. (A meta-device build costs ~1.7 s of one-off imports per process.)"""
    with _skip_random_init():
        encoder = EsmEncoder(num_layers, embed_dim, heads, **kwargs)
    base = kwargs.get("rope_theta", ROPE_THETA)
    encoder.rotary.inv_freq = rotary_inv_freq(embed_dim // heads, base)
    return encoder


def _assign(encoder: EsmEncoder, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = set(encoder.state_dict())
    found = set(state)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise ModelError(f"{source}: wrong key set for ESM-2 ({'; '.join(parts)})")
    shapes = encoder.state_dict()
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(shapes[key].shape):
            raise ModelError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, expected {tuple(shapes[key].shape)}"
            )
    fp32 = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    encoder.load_state_dict(fp32, strict=True, assign=True)


def _few(keys: list[str], limit: int = 4) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _summary(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


__all__ = [
    "EsmBundle",
    "EsmEncoder",
    "embed_proteins_published",
    "hf_to_fair_name",
    "load_esm",
    "load_fair_esm_reference",
    "mean_pool",
    "save_fair_esm_checkpoint",
]
