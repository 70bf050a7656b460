"""Weights moved through the staging buffers are the weights ``module.to`` would give, bit for
bit: cast where floating point, shared where shared, across buffer boundaries (CPU)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from virnucpro_tui.models import device_copy
from virnucpro_tui.models.esm import load_esm

CPU = torch.device("cpu")


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.embed.weight  # one tensor, two modules
        self.norm = nn.LayerNorm(6)
        self.transposed = nn.Parameter(torch.randn(5, 3).t())  # not contiguous
        self.register_buffer("positions", torch.arange(7))  # integers: never cast
        self.register_buffer("scale", torch.tensor(0.5))  # a 0-d tensor


def _same(moved: nn.Module, expected: nn.Module) -> None:
    got, want = moved.state_dict(), expected.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("chunk_bytes", [7, 64, device_copy.CHUNK_BYTES])
def test_the_staged_copy_equals_to_bit_for_bit(chunk_bytes: int) -> None:
    torch.manual_seed(0)
    original = _Tied()
    expected = _Tied().to(torch.float16)
    expected.load_state_dict({k: v.clone() for k, v in original.state_dict().items()})
    expected.to(torch.float16)
    moved = device_copy.move(original, CPU, torch.float16, chunk_bytes=chunk_bytes)
    assert moved is original
    _same(moved, expected)
    assert moved.positions.dtype == torch.int64
    assert moved.head.weight is moved.embed.weight  # still shared


def test_a_memory_mapped_checkpoint_moves_whole(demo_models: Any) -> None:
    staged, plain = load_esm(demo_models.esm), load_esm(demo_models.esm)
    staged.to(CPU, torch.bfloat16, staged=True)
    plain.to(CPU, torch.bfloat16)
    _same(staged.encoder, plain.encoder)
    assert staged.dtype == torch.bfloat16


def test_without_page_locked_memory_the_plain_copy_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cudaHostAlloc failed")

    monkeypatch.setattr(device_copy._Stager, "__init__", refuse)
    module = nn.Linear(4, 3)
    expected = nn.Linear(4, 3)
    expected.load_state_dict(module.state_dict())
    _same(device_copy.move(module, CPU, torch.float16), expected.to(torch.float16))
