"""The fast inference paths compute the same functions as the reference modules (fp32, CPU)."""

from __future__ import annotations

import torch

from virnucpro_tui.models.dnabert import load_dnabert
from virnucpro_tui.models.esm import load_esm
from virnucpro_tui.models.fast import accelerate_dnabert, accelerate_esm

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
