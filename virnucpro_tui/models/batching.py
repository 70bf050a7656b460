"""Length-sorted batching under a token budget, with OOM recovery by halving.

Sorting by length keeps padding (wasted compute) small; results come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

PooledForward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(padded token ids [B, T], lengths [B]) -> pooled embeddings [B, D] float32."""


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def plan_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Group indices, shortest first, so that ``batch_size * longest <= max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # ascending order: the newcomer is the longest
        if current and ((len(current) + 1) * longest > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(t) for t in token_lists], dtype=torch.long)
    ids = torch.full((len(token_lists), int(lengths.max())), pad_id, dtype=torch.long)
    for row, toks in enumerate(token_lists):
        ids[row, : len(toks)] = torch.as_tensor(toks, dtype=torch.long)
    return ids, lengths


@dataclass
class BatchStats:
    batches: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    oom_splits: int = 0


def embed_token_lists(
    token_lists: Sequence[Sequence[int]],
    forward: PooledForward,
    pad_id: int,
    device: torch.device,
    max_tokens: int,
    max_batch: int = 4096,
    on_oom: Callable[[int], None] | None = None,
    stats: BatchStats | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Embed every token list; a batch that runs out of memory is retried in halves.

    ``on_batch(items, tokens)`` is called after each finished batch (for progress events).
    """
    stats = stats if stats is not None else BatchStats()
    out: list[torch.Tensor | None] = [None] * len(token_lists)

    def run(members: list[int]) -> None:
        ids, lengths = pad_batch([token_lists[i] for i in members], pad_id)
        try:
            pooled = forward(ids.to(device, non_blocking=True), lengths.to(device, non_blocking=True))
        except Exception as exc:
            if not is_oom(exc) or len(members) == 1:
                raise
            stats.oom_splits += 1
            if on_oom is not None:
                on_oom(len(members))
            half = len(members) // 2
            run(members[:half])
            run(members[half:])
            return
        stats.batches += 1
        stats.tokens += int(lengths.sum())
        stats.padded_tokens += ids.numel()
        pooled = pooled.float().cpu()
        for row, i in enumerate(members):
            out[i] = pooled[row]
        if on_batch is not None:
            on_batch(len(members), int(lengths.sum()))

    for members in plan_batches([len(t) for t in token_lists], max_tokens, max_batch):
        run(members)
    if not token_lists:
        return torch.empty(0, 0)
    return torch.stack(out)  # type: ignore[arg-type]
