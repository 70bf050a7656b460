"""Warm-up batches: the typical shapes run once at load, so compilation happens then, not
mid-shard. The engine and the process that compiles ESM-2 ahead of time run the same ones."""

from __future__ import annotations

from typing import Any

import torch

WARMUP_TOKENS = {"esm": 168, "dnabert": 112}  # 166-aa proteins; ~500-bp frames in DNABERT-S BPE


def warmup_rows(name: str, budget: int, max_batch: int) -> int:
    """Rows of a warm-up batch: a full batch of the typical length under the token budget."""
    return max(2, min(budget // WARMUP_TOKENS[name], max_batch))


def warm_up(name: str, bundle: Any, rows: int, device: torch.device) -> None:
    """ESM-2 without and with padding (two graphs), DNABERT-S once (padding is in its kernel)."""
    length = WARMUP_TOKENS[name]
    ids = torch.randint(4, 24, (rows, length), dtype=torch.long)
    if name == "esm":
        ids[:, 0], ids[:, -1] = bundle.alphabet.cls_idx, bundle.alphabet.eos_idx
        lengths = torch.full((rows,), length - 2)
        bundle.forward_pooled(ids, lengths, has_padding=False)
        short = length // 2
        ids[-1, short:], ids[-1, short - 1] = bundle.alphabet.padding_idx, bundle.alphabet.eos_idx
        lengths[-1] = short - 2
        bundle.forward_pooled(ids, lengths, has_padding=True)
    else:
        bundle.forward_pooled(ids, torch.full((rows,), length))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
