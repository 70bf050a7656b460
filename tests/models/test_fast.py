"""The fast inference paths compute the same functions as the reference modules (fp32, CPU)."""

from __future__ import annotations

import torch

from virnucpro_tui.models.dnabert import load_dnabert
from virnucpro_tui.models.esm import load_esm
from virnucpro_tui.models.fast import (
    FastEsm,
    accelerate_dnabert,
    accelerate_esm,
    accelerate_esm_as_set,
)
from virnucpro_tui.models.settings import EngineSettings

PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MA", "GGGGSLLLKKKEEEDDDRRRPPPAAA" * 3, "WYC"]
DNA = ["ATGC" * 60, "ACGTTGCA" * 9, "ATGAAACCCGGGTTT" * 20, "A" * 30]


def test_fast_esm_matches_reference(demo_models) -> None:
    ref = load_esm(demo_models.esm)
    fast = load_esm(demo_models.esm)
    accelerate_esm(fast, compile_=False)
    for batch in (PROTEINS, [PROTEINS[0]] * 3):  # padded, and no padding (the flash path on GPU)
        tokens, lengths = ref.pad(ref.tokenize(batch))
        expected = ref.forward_pooled(tokens, lengths)
        got = fast.forward_pooled(tokens, lengths)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=2e-5, rtol=1e-5), (got - expected).abs().max()
    # the separate q/k/v weights are gone: one fused matrix per layer
    assert not any("q_proj" in name for name, _ in fast.encoder.named_parameters())


def test_fast_dnabert_matches_reference(demo_models) -> None:
    ref = load_dnabert(demo_models.dnabert)
    fast = load_dnabert(demo_models.dnabert)
    accelerate_dnabert(fast, compile_=False)
    ids, mask = ref.collate(ref.tokenize(DNA))
    expected = ref.forward_pooled(ids, mask)
    got = fast.forward_pooled(ids, mask)
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()
    assert fast.device == ref.device and fast.dtype == ref.dtype


def test_flex_dnabert_matches_reference(demo_models) -> None:
    """ALiBi and padding inside FlexAttention's score_mod (the compiled GPU path), run eagerly
    on the CPU in fp32, equal the reference's materialised bias."""
    import warnings

    from virnucpro_tui.models.fast import FastDnabert

    ref = load_dnabert(demo_models.dnabert)
    fast = load_dnabert(demo_models.dnabert)
    fast.model = FastDnabert(fast.model, flex=True)
    ids, mask = ref.collate(ref.tokenize(DNA))
    assert not mask.all()  # the batch has padding: the score_mod masks it
    expected = ref.forward_pooled(ids, mask)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        got = fast.forward_pooled(ids, mask)
        lengths = fast.forward_pooled(ids, mask.sum(dim=1))  # lengths instead of a mask
    assert torch.allclose(got, expected, atol=2e-6), (got - expected).abs().max()
    assert torch.equal(lengths, got)
    assert fast.model.slopes.dtype == torch.float32
    fast.to("cpu", torch.bfloat16)
    assert fast.model.slopes.dtype == torch.float32 and fast.dtype == torch.bfloat16


def test_score_mod_is_alibi_plus_padding() -> None:
    from virnucpro_tui.models.dnabert import alibi_slopes
    from virnucpro_tui.models.fast import alibi_score_mod

    slopes = torch.tensor(alibi_slopes(12))
    mod = alibi_score_mod(slopes, torch.tensor([5, 3]))
    score = torch.tensor(0.25)
    got = mod(score, torch.tensor(1), torch.tensor(7), torch.tensor(0), torch.tensor(2))
    assert torch.isclose(got, score - slopes[7] * 2)
    masked = mod(score, torch.tensor(1), torch.tensor(7), torch.tensor(0), torch.tensor(3))
    assert masked == float("-inf")


def test_the_engine_settings_pick_the_esm_fast_path(demo_models) -> None:
    chosen = {}
    for name, settings in (
        ("default", EngineSettings()),
        ("exact", EngineSettings(exact_gelu=True)),
        ("cudnn", EngineSettings(esm_attention="cudnn")),
        # the fused rotary kernel runs on a GPU only: the CPU keeps PyTorch's attention
        ("rotary-fused", EngineSettings(esm_attention="rotary-fused")),
    ):
        bundle = load_esm(demo_models.esm)
        accelerate_esm_as_set(bundle, False, settings)
        assert isinstance(bundle.encoder, FastEsm)
        layer = bundle.encoder.layers[0]
        chosen[name] = (layer.gelu_epilogue, layer.attn.attention, layer.gelu_in_fc2)
    assert chosen == {
        "default": (True, "flash", False),  # fc1's GELU in the cuBLASLt epilogue
        "exact": (False, "flash", False),
        "cudnn": (True, "cudnn", False),
        "rotary-fused": (True, "flash", False),
    }


def test_the_fused_rotary_kernel_is_chosen_only_where_it_can_run(monkeypatch) -> None:
    """On an Ampere or later GPU, with Triton, for heads the kernel fits (ESM-2 3B: 64; the
    demo: 16)."""
    import importlib.util

    from virnucpro_tui.models.fast import attention_for
    from virnucpro_tui.models.settings import ESM_ATTENTION_ENV

    hopper, ampere, turing = (9, 0), (8, 0), (7, 5)
    assert attention_for("rotary-fused", hopper, 64) == "rotary-fused"
    assert attention_for("rotary-fused", ampere, 128) == "rotary-fused"
    assert attention_for("rotary-fused", turing, 64) == "flash"
    assert attention_for("rotary-fused", None, 64) == "flash"  # the CPU
    assert attention_for("rotary-fused", hopper, 16) == "flash"
    assert attention_for("rotary-fused", hopper, 96) == "flash"  # not a power of two
    assert attention_for("cudnn", None, 16) == "cudnn"  # the others are PyTorch's choice
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # a CPU-only install
    assert attention_for("rotary-fused", hopper, 64) == "flash"
    monkeypatch.setenv(ESM_ATTENTION_ENV, "rotary-fused")
    assert EngineSettings().esm_attention == "rotary-fused"
