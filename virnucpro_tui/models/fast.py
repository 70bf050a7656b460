"""Fast inference paths for the GPU: the same functions as the reference modules, rearranged.

- ESM-2: one fused QKV matrix product per layer with the query scale folded into its weights,
  rotary tables cached per length, flash attention when a batch has no padding (batches are
  length-sorted, so most have none). Each layer returns its feed-forward output unadded: the
  next layer adds it in the kernel that computes its LayerNorm (one pass over the hidden state
  instead of two). ``torch.compile`` compiles one layer and reuses it for all 36 ("regional"
  compilation: a fraction of the whole-stack compile time, docs/benchmarks.md#start-up).
- DNABERT-S: layers compiled regionally; attention with ALiBi and the padding mask inside
  FlexAttention's ``score_mod`` (the default: no ``[B, heads, T, T]`` tensor, 12% faster on an
  H200; only when compiled, since eager FlexAttention builds the scores densely) or with the
  reference's ALiBi+padding bias tensor.

Both keep the reference call signatures, so ``EsmBundle.forward_pooled`` and
``DnabertBundle.forward_pooled`` (masked means in fp32 on the device) work unchanged. Exactness
against the reference modules is tested on the CPU in fp32 (tests/models/test_fast.py).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.models.esm import MASK_RATIO_TRAIN, EncoderLayer, EsmEncoder, apply_rotary
from virnucpro_tui.models.settings import EngineSettings

if TYPE_CHECKING:
    from virnucpro_tui.models.precompile import AheadOfTime

COMPILE_MODES = ("regional", "stack")  # one layer reused, or the whole stack unrolled


class _FusedAttention(nn.Module):
    def __init__(self, layer: EncoderLayer, attention: str = "flash") -> None:
        super().__init__()
        # "flash": PyTorch's kernels; "cudnn": cuDNN's first (the others where it cannot run);
        # "rotary-fused": rotary and attention in one Triton kernel (models/rotary_attention.py)
        self.attention = attention
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
        if self.attention == "rotary-fused":
            keep = None if mask is None else mask.reshape(b, t)
            out = torch.ops.virnucpro.rotary_attention(self.qkv(x), cos, sin, keep, self.heads)
            return self.out_proj(out)
        q, k, v = (
            self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        )
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.attention == "cudnn":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]
            with sdpa_kernel([*order, SDPBackend.EFFICIENT_ATTENTION], set_priority=True):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


def linear_gelu_tanh(x: torch.Tensor, fc: nn.Linear) -> torch.Tensor:
    """``gelu(fc(x), approximate="tanh")`` in one cuBLASLt call (GELU in the GEMM epilogue).

    cuBLASLt's GELU epilogue is the tanh approximation, not ESM-2's exact (erf) GELU: its
    fidelity is measured in docs/benchmarks.md and it is off unless asked for."""
    flat = x.reshape(-1, x.shape[-1])
    out = torch._addmm_activation(fc.bias, flat, fc.weight.t(), use_gelu=True)
    return out.view(*x.shape[:-1], fc.out_features)


class _FastLayer(nn.Module):
    def __init__(
        self, layer: EncoderLayer, gelu_epilogue: bool = False, attention: str = "flash"
    ) -> None:
        super().__init__()
        self.attn_norm = layer.self_attn_layer_norm
        self.attn = _FusedAttention(layer, attention)
        self.ffn_norm = layer.final_layer_norm
        self.fc1, self.fc2 = layer.fc1, layer.fc2
        self.gelu_epilogue = gelu_epilogue
        self.gelu_in_fc2 = False  # fp8: fc2 applies the GELU itself (models/fp8_gelu.py)

    def forward(
        self,
        x: torch.Tensor,
        pending: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x + pending)`` through the layer; returns the state before the feed-forward
        residual and that residual (``pending`` for the next layer)."""
        x = x + pending
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        h = self.ffn_norm(x)
        if self.gelu_in_fc2:
            return x, self.fc2(self.fc1(h))
        h = linear_gelu_tanh(h, self.fc1) if self.gelu_epilogue else F.gelu(self.fc1(h))
        return x, self.fc2(h)


class FastEsm(nn.Module):
    """ESM-2 for inference; ``forward(tokens, has_padding)`` as ``EsmEncoder`` (final hidden)."""

    def __init__(
        self, encoder: EsmEncoder, gelu_epilogue: bool = False, attention: str = "flash"
    ) -> None:
        super().__init__()
        self.num_layers, self.embed_dim = encoder.num_layers, encoder.embed_dim
        self.padding_idx, self.mask_idx = encoder.padding_idx, encoder.mask_idx
        self.token_dropout = encoder.token_dropout
        self.embed_tokens = encoder.embed_tokens
        self.layers = nn.ModuleList(
            _FastLayer(cast(EncoderLayer, layer), gelu_epilogue, attention)
            for layer in encoder.layers
        )
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
        pending = torch.zeros_like(x)
        for layer in self.layers:
            x, pending = layer(x, pending, cos, sin, mask)
        return self.final_norm(x + pending)


# --- DNABERT-S ---------------------------------------------------------------------------------


def alibi_score_mod(slopes: torch.Tensor, lengths: torch.Tensor) -> Callable[..., torch.Tensor]:
    """FlexAttention ``score_mod``: ALiBi ``-slope[h] * |i - j|`` (fp32, in the kernel) and
    -inf on keys past each row's length (padding). The reference adds the same bias."""

    def score_mod(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor
    ) -> torch.Tensor:
        biased = score - slopes[h] * (q - kv).abs()
        return torch.where(kv < lengths[b], biased, float("-inf"))

    return score_mod


class _FlexLayer(nn.Module):
    """One DNABERT-S layer (the reference's weights) with ALiBi inside FlexAttention."""

    def __init__(self, layer: Any, glu_kernel: bool = False) -> None:
        super().__init__()
        self.heads = layer.heads
        self.attention = layer.attention
        self.mlp = layer.mlp
        if glu_kernel:  # registers torch.ops.virnucpro.glu_gelu (Triton: GPU builds only)
            from virnucpro_tui.models.glu_gelu import fits

            glu_kernel = fits(self.mlp.gated_layers.weight)
        self.glu_kernel = glu_kernel

    def forward(self, x: torch.Tensor, slopes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention.flex_attention import flex_attention

        b, t, h = x.shape
        qkv = self.attention.self.Wqkv(x).view(b, t, 3, self.heads, h // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        a = flex_attention(q, k, v, score_mod=alibi_score_mod(slopes, lengths))
        a = a.transpose(1, 2).reshape(b, t, h)
        out = self.attention.output
        x = out.LayerNorm(out.dense(a) + x)
        if not self.glu_kernel:
            return self.mlp(x)
        mlp = self.mlp
        h = torch.ops.virnucpro.glu_gelu(x, mlp.gated_layers.weight)
        return mlp.layernorm(mlp.wo(h) + x)


class FastDnabert(nn.Module):
    """DNABERT-S with ALiBi in the attention kernel (``flex``) or the reference bias."""

    slopes: torch.Tensor

    def __init__(self, model: Any, flex: bool, glu_kernel: bool = False) -> None:
        super().__init__()
        self.inner = model
        self.embeddings = model.embeddings  # the same module: bundle.device/dtype still work
        self.flex = flex
        if flex:
            layers = model.encoder.layer
            self.layers = nn.ModuleList(_FlexLayer(layer, glu_kernel) for layer in layers)
            device = model.embeddings.word_embeddings.weight.device
            self.register_buffer(
                "slopes", torch.tensor(model.slopes, dtype=torch.float32, device=device)
            )

    def _apply(self, fn: Any, recurse: bool = True) -> FastDnabert:
        super()._apply(fn, recurse)
        if self.flex:  # the slopes follow the device but stay fp32 (like the reference bias)
            self.slopes = self.slopes.float()
        return self

    def stack(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for layer in self.inner.encoder.layer:
            x = layer(x, bias)
        return x

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.inner.embeddings(input_ids)
        if not self.flex:
            bias = self.inner.attention_bias(input_ids.shape[1], attention_mask, x.dtype)
            return self.stack(x, bias)
        if attention_mask is None:
            lengths = torch.full((x.shape[0],), x.shape[1], device=x.device, dtype=torch.long)
        else:
            lengths = attention_mask.sum(dim=1)
        for layer in self.layers:
            x = layer(x, self.slopes, lengths)
        return x


# --- compilation -------------------------------------------------------------------------------


def compile_module(module: nn.Module, method: str) -> None:
    """Compile one method of ``module`` in place, with dynamic batch and length, so batches of
    any shape reuse one graph (two with the padding-mask variant) instead of recompiling."""
    setattr(module, method, torch.compile(getattr(module, method), dynamic=_dynamic()))


def compile_layers(layers: nn.ModuleList, ahead: AheadOfTime | None = None) -> None:
    """Regional compilation: every layer runs the same compiled graph (layers are identical
    up to their weights, which are graph inputs), compiled once instead of once per layer;
    with ``ahead``, compiled ahead of time and saved whole (models/precompile.py)."""
    if ahead is not None:
        from virnucpro_tui.models.precompile import install

        install(layers, ahead)
        return
    for layer in layers:
        layer.compile(dynamic=_dynamic())


def _dynamic() -> bool | None:
    return os.environ.get("VIRNUCPRO_TUI_COMPILE_DYNAMIC", "1") != "0" or None


def raise_recompile_limit() -> None:
    """One process may compile the same layer for several dtypes and mask variants (the bench,
    ``check-precision``): more than dynamo's default of 8 graphs per function."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 64))


def accelerate_esm(
    bundle: Any,
    compile_: bool,
    *,
    mode: str = "regional",
    fp8: bool = False,
    gelu_epilogue: bool = False,
    attention: str = "flash",
    fp8_gelu_kernel: bool = False,
    ahead: AheadOfTime | None = None,
) -> None:
    """Swap the bundle's encoder for the fast one (frees the separate q/k/v weights); with
    ``fp8`` its matrix products run in FP8 (models/fp8.py); ``fp8_gelu_kernel`` feeds each fc2
    from the one-pass GELU and quantisation kernel (models/fp8_gelu.py); ``ahead``: the
    layers compiled ahead of time (regional mode only)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r}: expected one of {COMPILE_MODES}")
    fast = FastEsm(bundle.encoder, gelu_epilogue, usable_attention(attention, bundle.encoder))
    if fp8:
        from virnucpro_tui.models.fp8 import quantize_linears

        if fp8_gelu_kernel and importlib.util.find_spec("triton") is not None:
            # a torch without Triton keeps torchao's compiled GELU and quantisation
            from virnucpro_tui.models.fp8_gelu import fuse_gelu_into_fc2

            fuse_gelu_into_fc2(fast.layers)
        quantize_linears(fast.layers)
    if compile_:
        raise_recompile_limit()
        if mode == "regional":
            compile_layers(fast.layers, ahead)
        else:
            compile_module(fast, "_stack")
    bundle.encoder = fast


def usable_attention(attention: str, encoder: EsmEncoder) -> str:
    """``attention``, or ``"flash"`` where the fused rotary kernel cannot run: without Triton
    (a CPU install), on the CPU or a GPU before Ampere, or with a head it does not fit."""
    if attention != "rotary-fused":
        return attention
    attn = cast(EncoderLayer, encoder.layers[0]).self_attn
    device = attn.q_proj.weight.device
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return attention_for(attention, capability, attn.head_dim)


def attention_for(attention: str, capability: tuple[int, int] | None, head_dim: int) -> str:
    """:func:`usable_attention` on a GPU of ``capability`` (``None``: the CPU) for heads of
    ``head_dim`` values. The kernel's products need Ampere's tensor cores (8.0) or later."""
    if attention != "rotary-fused":
        return attention
    if capability is None or capability < (8, 0) or importlib.util.find_spec("triton") is None:
        return "flash"
    from virnucpro_tui.models.rotary_attention import fits  # registers the kernel's op

    return attention if fits(head_dim) else "flash"


def accelerate_as_set(
    name: str,
    bundle: Any,
    compile_: bool,
    settings: EngineSettings,
    ahead: AheadOfTime | None = None,
) -> None:
    """``accelerate_esm_as_set`` or ``accelerate_dnabert_as_set``, by model name."""
    accelerate = accelerate_esm_as_set if name == "esm" else accelerate_dnabert_as_set
    accelerate(bundle, compile_, settings, ahead)


def compile_accelerated(
    name: str, bundle: Any, settings: EngineSettings, ahead: AheadOfTime | None
) -> None:
    """Compile, in place, a model that ``accelerate_*_as_set`` made fast but left uncompiled
    (its layers were compiled in a process beside; with ``ahead`` they load from its files)."""
    raise_recompile_limit()
    if name == "esm":
        compile_layers(bundle.encoder.layers, ahead)
        return
    bundle.model = bundle.model.inner  # DNABERT-S: the compiled path attends in FlexAttention
    accelerate_dnabert_as_set(bundle, True, settings, ahead)


def accelerate_esm_as_set(
    bundle: Any, compile_: bool, settings: EngineSettings, ahead: AheadOfTime | None = None
) -> None:
    """``accelerate_esm`` as the engine's settings ask: FP8 products for ``--precision fp8``,
    else fc1's GELU in the cuBLASLt epilogue unless ``exact_gelu``; the attention kernel."""
    fp8 = settings.precision == "fp8"
    accelerate_esm(
        bundle,
        compile_,
        fp8=fp8,
        gelu_epilogue=not fp8 and not settings.exact_gelu,
        attention=settings.esm_attention,
        fp8_gelu_kernel=settings.fp8_gelu_kernel,
        ahead=ahead,
    )


def accelerate_dnabert_as_set(
    bundle: Any, compile_: bool, settings: EngineSettings, ahead: AheadOfTime | None = None
) -> None:
    """``accelerate_dnabert`` as the engine's settings ask."""
    accelerate_dnabert(
        bundle,
        compile_,
        attention=settings.dnabert_attention,
        glu_kernel=settings.dnabert_glu_kernel,
        ahead=ahead,
    )


def accelerate_dnabert(
    bundle: Any,
    compile_: bool,
    *,
    mode: str = "regional",
    attention: str = "bias",
    glu_kernel: bool = False,
    ahead: AheadOfTime | None = None,
) -> None:
    """ALiBi as a bias tensor, or inside FlexAttention (``attention="flex"``, compiled only);
    ``glu_kernel``: the gated product and its GELU in one kernel (flex only, models/glu_gelu.py)."""
    flex = compile_ and attention == "flex"
    fast = FastDnabert(bundle.model, flex=flex, glu_kernel=flex and glu_kernel)
    if compile_:
        raise_recompile_limit()
        if mode == "stack":
            compile_module(fast, "forward" if flex else "stack")
        else:
            compile_layers(fast.layers if flex else bundle.model.encoder.layer, ahead)
    bundle.model = fast
