"""Fast inference paths for the GPU: the same functions as the reference modules, rearranged.

- ESM-2: one fused QKV matrix product per layer with the query scale folded into its weights,
  rotary tables cached per length, flash attention when a batch has no padding (batches are
  length-sorted, so most have none), and ``torch.compile`` over the whole stack.
- DNABERT-S: the ALiBi(+padding) bias is built outside, the layer stack is compiled.

Both keep the reference call signatures, so ``EsmBundle.forward_pooled`` and
``DnabertBundle.forward_pooled`` (masked means in fp32 on the device) work unchanged. Exactness
against the reference modules is tested on the CPU in fp32 (tests/models/test_fast.py).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.models.esm import MASK_RATIO_TRAIN, EncoderLayer, EsmEncoder, apply_rotary


class _FusedAttention(nn.Module):
    def __init__(self, layer: EncoderLayer) -> None:
        super().__init__()
        attn = layer.self_attn
        self.heads, self.head_dim = attn.num_heads, attn.head_dim
        s = attn.scaling
        with torch.no_grad():
            weight = torch.cat([attn.q_proj.weight * s, attn.k_proj.weight, attn.v_proj.weight])
            bias = torch.cat([attn.q_proj.bias * s, attn.k_proj.bias, attn.v_proj.bias])
        self.qkv = nn.Linear(
            weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype
        )
        self.qkv.weight = nn.Parameter(weight, requires_grad=False)
        self.qkv.bias = nn.Parameter(bias, requires_grad=False)
        self.out_proj = attn.out_proj

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        )
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class _FastLayer(nn.Module):
    def __init__(self, layer: EncoderLayer) -> None:
        super().__init__()
        self.attn_norm = layer.self_attn_layer_norm
        self.attn = _FusedAttention(layer)
        self.ffn_norm = layer.final_layer_norm
        self.fc1, self.fc2 = layer.fc1, layer.fc2

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.fc2(F.gelu(self.fc1(self.ffn_norm(x))))


class FastEsm(nn.Module):
    """ESM-2 for inference; ``forward(tokens, has_padding)`` as ``EsmEncoder`` (final hidden)."""

    def __init__(self, encoder: EsmEncoder) -> None:
        super().__init__()
        self.num_layers, self.embed_dim = encoder.num_layers, encoder.embed_dim
        self.padding_idx, self.mask_idx = encoder.padding_idx, encoder.mask_idx
        self.token_dropout = encoder.token_dropout
        self.embed_tokens = encoder.embed_tokens
        self.layers = nn.ModuleList(_FastLayer(layer) for layer in encoder.layers)
        self.final_norm = encoder.emb_layer_norm_after
        self.rotary = encoder.rotary
        self._tables: dict[
            tuple[int, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]
        ] = {}

    def tables(self, t: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (t, dtype, self.rotary.inv_freq.device)
        if key not in self._tables:
            self._tables[key] = self.rotary.tables(t, dtype)
        return self._tables[key]

    def forward(self, tokens: torch.Tensor, has_padding: bool | None = None) -> torch.Tensor:
        padding = tokens.eq(self.padding_idx)
        x = self.embed_tokens(tokens)
        if self.token_dropout:
            is_mask = tokens == self.mask_idx
            x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
            observed = (is_mask.sum(-1).float() / (~padding).sum(-1)).to(x.dtype)
            x = x * (1 - MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
        x = x * (~padding).unsqueeze(-1).to(x.dtype)
        if has_padding is None:
            has_padding = bool(padding.any())
        mask = ~padding[:, None, None, :] if has_padding else None
        cos, sin = self.tables(tokens.shape[1], x.dtype)
        return self._stack(x, cos, sin, mask)

    def _stack(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.final_norm(x)


class FastDnabert(nn.Module):
    """DNABERT-S with the bias built eagerly (cached ALiBi) and the layer stack compiled."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.inner = model
        self.embeddings = model.embeddings  # the same module: bundle.device/dtype still work

    def stack(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for layer in self.inner.encoder.layer:
            x = layer(x, bias)
        return x

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.inner.embeddings(input_ids)
        bias = self.inner.attention_bias(input_ids.shape[1], attention_mask, x.dtype)
        return self.stack(x, bias)


def compile_module(module: nn.Module, method: str) -> None:
    """Compile one method of ``module`` in place, with dynamic batch and length, so batches of
    any shape reuse one graph (two with the padding-mask variant) instead of recompiling."""
    dynamic = os.environ.get("VIRNUCPRO_TUI_COMPILE_DYNAMIC", "1") != "0"
    setattr(module, method, torch.compile(getattr(module, method), dynamic=dynamic or None))


def accelerate_esm(bundle: Any, compile_: bool) -> None:
    """Swap the bundle's encoder for the fast one (frees the separate q/k/v weights)."""
    fast = FastEsm(bundle.encoder)
    if compile_:
        compile_module(fast, "_stack")
    bundle.encoder = fast


def accelerate_dnabert(bundle: Any, compile_: bool) -> None:
    fast = FastDnabert(bundle.model)
    if compile_:
        compile_module(fast, "stack")
    bundle.model = fast
