"""Warm-up batches: the typical shapes run once at load, so compilation happens then, not
mid-shard. The engine and the processes that compile ahead of time run the same ones.

On a warm compile cache nothing is compiled: the warm-up only loads the saved graphs and
kernels, which a small batch does as well as a full one (the graphs take any batch size, and
Triton's tuning was saved when the cache was filled at full size). A full ESM-2 batch costs
0.4 s of GPU time on an H100 and the warm-up ran three (docs/benchmarks.md#start-up-levers-on-one-h100-2026-12-08-just-after-midnight).
"""

from __future__ import annotations

from typing import Any

import torch

WARMUP_TOKENS = {"esm": 168, "dnabert": 112}  # 166-aa proteins; ~500-bp frames in DNABERT-S BPE
LIGHT_ROWS = 8  # a warm cache's warm-up: unlike any other size in the graphs (no duck sizing)


def warmup_rows(name: str, budget: int, max_batch: int, light: bool = False) -> int:
    """Rows of a warm-up batch: a full batch of the typical length under the token budget;
    ``light`` (a warm cache: nothing to compile or tune) a small one."""
    full = max(2, min(budget // WARMUP_TOKENS[name], max_batch))
    return min(full, LIGHT_ROWS) if light else full


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
