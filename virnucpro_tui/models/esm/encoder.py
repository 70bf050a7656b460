"""The ESM-2 encoder (docs/architecture.md#the-scientific-contract).

``EsmEncoder`` is a compact ESM-2 whose parameter names equal fair-esm's ``ESM2``, so it loads
fair-esm weights directly. It runs attention through ``scaled_dot_product_attention`` (a
boolean key-padding mask only when the batch has padding) and works in fp32, bf16 and fp16.
Loading lives in ``fair.py`` and ``hf.py``, tokens in ``tokens.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.models.weights import build_uninitialised, check_state, shapes_of

MASK_RATIO_TRAIN = 0.15 * 0.8  # the token-dropout ratio of all ESM training runs
LAYER_NORM_EPS = 1e-5  # fair-esm's ESM1bLayerNorm is torch's LayerNorm (or apex's), eps 1e-5
ROPE_THETA = 10000.0


def rotary_inv_freq(head_dim: int, base: float = ROPE_THETA) -> torch.Tensor:
    """fair-esm's (and transformers') inverse frequencies, fp32, on the CPU (also while a module
    is built on the meta device: the table is tiny, and a loader may replace it)."""
    steps = torch.arange(0, head_dim, 2, device="cpu").float()
    return 1.0 / (base ** (steps / head_dim))


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


@dataclass(frozen=True)
class EncoderShape:
    """What an ESM-2 checkpoint's config says about the network."""

    num_layers: int
    embed_dim: int
    attention_heads: int
    ffn_dim: int
    alphabet_size: int = 33
    token_dropout: bool = True
    layer_norm_eps: float = LAYER_NORM_EPS
    rope_theta: float = ROPE_THETA

    def build(self) -> EsmEncoder:
        return EsmEncoder(
            self.num_layers,
            self.embed_dim,
            self.attention_heads,
            ffn_dim=self.ffn_dim,
            alphabet_size=self.alphabet_size,
            token_dropout=self.token_dropout,
            layer_norm_eps=self.layer_norm_eps,
            rope_theta=self.rope_theta,
        )


def uninitialised_encoder(shape: EncoderShape) -> EsmEncoder:
    """An EsmEncoder on the meta device (its rotary table on the CPU): for a loader to give it
    real weights with ``load_state_dict(assign=True)``, or for checking shapes."""
    return build_uninitialised(shape.build)


def encoder_with_weights(
    state: Mapping[str, torch.Tensor],
    source: Path,
    shape: EncoderShape,
    inv_freq: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> EsmEncoder:
    """An EsmEncoder holding ``state`` (fair-esm names) in ``dtype``, in eval mode, on the CPU.
    The tensors are assigned, not copied, when they are in ``dtype`` already: a memory-mapped
    fp16 checkpoint loaded for fp16 goes to the GPU from its pages, with no fp32 copy between.
    ``inv_freq``: a stored rotary table to use as is (fair-esm does)."""
    encoder = uninitialised_encoder(shape)
    check_state(shapes_of(state), shapes_of(encoder), source, "ESM-2")
    cast = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}
    encoder.load_state_dict(cast, strict=True, assign=True)
    if inv_freq is not None:
        encoder.rotary.set_inv_freq(inv_freq)
    return encoder.eval().requires_grad_(False)
