"""``--precision fp8``'s row-wise quantisation and the fused GELU path, checked on the CPU.

The Triton kernel itself (models/fp8_gelu.py) needs a GPU; scripts/gpu_speed_probe.py checks
it byte for byte against ``gelu_quantize_reference`` there (docs/benchmarks.md#levers-measured-2026-12-07).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro_tui.models.engine import Engine
from virnucpro_tui.models.esm import EsmEncoder
from virnucpro_tui.models.fast import FastEsm
from virnucpro_tui.models.fp8 import (
    FP8,
    FP8_MAX,
    gelu_quantize_reference,
    quantize_weight_rows,
)
from virnucpro_tui.models.settings import EngineSettings, ModelFiles


def test_weight_rows_use_the_full_fp8_range_and_dequantise_within_fp8_precision() -> None:
    torch.manual_seed(0)
    weight = torch.randn(6, 40) * torch.tensor([0.01, 0.1, 1, 10, 100, 1000])[:, None]
    data, scale = quantize_weight_rows(weight)
    assert data.dtype == FP8 and scale.shape == (6, 1)
    assert torch.equal(data.float().abs().amax(dim=1), torch.full((6,), FP8_MAX))
    assert torch.allclose(scale[:, 0], weight.abs().amax(dim=1) / FP8_MAX)
    error = (data.float() * scale - weight).abs() / weight.abs().amax(dim=1, keepdim=True)
    assert float(error.max()) <= 2**-4  # e4m3: 3 mantissa bits, half an ulp at the top


def test_a_zero_row_quantises_to_zeros_with_a_finite_scale() -> None:
    data, scale = quantize_weight_rows(torch.zeros(2, 8))
    assert torch.isfinite(scale).all() and bool((scale > 0).all())
    assert torch.equal(data.float(), torch.zeros(2, 8))


def test_gelu_rows_are_the_exact_gelu_quantised_per_row() -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 300, dtype=torch.bfloat16) * 3
    data, scale = gelu_quantize_reference(x)
    expected = F.gelu(x.float())
    assert torch.allclose(scale[:, 0], expected.abs().amax(dim=1) / FP8_MAX)
    error = (data.float() * scale - expected).abs().amax() / expected.abs().amax()
    assert 0 < float(error) <= 2**-4


class _GeluThenLinear(nn.Module):
    """What ``GeluFp8Linear`` computes, in full precision: ``linear(gelu(h))``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(F.gelu(h))


def test_a_layer_whose_fc2_applies_the_gelu_computes_the_same_encoder() -> None:
    torch.manual_seed(2)
    fast = FastEsm(EsmEncoder(2, 64, 4).eval())
    tokens = torch.randint(4, 24, (3, 12))
    tokens[:, 0], tokens[:, -1] = 0, 2
    with torch.no_grad():
        before = fast(tokens)
        for layer in fast.layers:
            layer.fc2, layer.gelu_in_fc2 = _GeluThenLinear(layer.fc2), True
        after = fast(tokens)
    assert torch.equal(before, after)


def test_the_kernel_choice_keys_the_compile_cache_only_when_it_is_on() -> None:
    files = ModelFiles(Path("esm.pt"), Path("dnabert"), Path("clf.safetensors"))

    def variant(**settings: object) -> str:
        engine = Engine(files, torch.device("cpu"), EngineSettings(**settings))  # type: ignore[arg-type]
        return engine.compile_variant("esm")

    plain = variant(precision="fp8", fp8_gelu_kernel=False)
    assert variant(precision="fp8") == variant(precision="fp8", fp8_gelu_kernel=True)  # default
    assert variant(precision="fp8") == plain.replace(":flash:", ":flash:fp8-gelu-kernel:")
    assert variant(precision="fp16", fp8_gelu_kernel=True) == variant(precision="fp16")


def test_the_glu_kernel_keys_only_dnabert_s_compile_cache() -> None:
    files = ModelFiles(Path("esm.pt"), Path("dnabert"), Path("clf.safetensors"))

    def variant(model: str, **settings: object) -> str:
        engine = Engine(files, torch.device("cpu"), EngineSettings(**settings))  # type: ignore[arg-type]
        return engine.compile_variant(model)

    plain = variant("dnabert")
    assert variant("dnabert", dnabert_glu_kernel=True) == plain.replace(
        ":flex:", ":flex:glu-kernel:"
    )
    assert variant("esm", dnabert_glu_kernel=True) == variant("esm")
