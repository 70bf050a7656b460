"""Length-sorted batching under a token budget, with OOM recovery by halving.

Sorting by length keeps padding (wasted compute) small. On a GPU the loop never waits for the
device: padded batches are built with NumPy in pinned memory and copied asynchronously, pooled
results are gathered on the device, and the host synchronises once, at the end of the stage, so
building batch i+1 overlaps the compute of batch i. Results come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

PooledForward = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
"""(padded token ids [B, T], lengths [B], has_padding known on the host) -> pooled [B, D]."""


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


def pad_batch(
    token_lists: Sequence[Sequence[int]], pad_id: int, pin: bool = False, align: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T] and lengths [B] as int64 CPU tensors (pinned on request); ``T`` is
    rounded up to a multiple of ``align`` (aligned attention biases need no per-layer copy)."""
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    width = -(-int(lengths.max()) // align) * align
    ids = np.full((len(token_lists), width), pad_id, dtype=np.int64)
    ids[np.arange(width)[None, :] < lengths[:, None]] = np.fromiter(
        (tok for toks in token_lists for tok in toks), dtype=np.int64, count=int(lengths.sum())
    )
    ids_t, lengths_t = torch.from_numpy(ids), torch.from_numpy(lengths)
    if pin:
        ids_t, lengths_t = ids_t.pin_memory(), lengths_t.pin_memory()
    return ids_t, lengths_t


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
    align: int = 1,
) -> torch.Tensor:
    """Embed every token list; a batch that runs out of memory is retried in halves.

    ``on_batch(items, tokens)`` is called after each batch is queued (for progress events).
    Returns a float32 CPU tensor [N, D] in input order.
    """
    stats = stats if stats is not None else BatchStats()
    cuda = device.type == "cuda"
    result: torch.Tensor | None = None

    def run(members: list[int]) -> None:
        nonlocal result
        ids_cpu, lengths_cpu = pad_batch(
            [token_lists[i] for i in members], pad_id, pin=cuda, align=align
        )
        has_padding = bool((lengths_cpu < ids_cpu.shape[1]).any())
        try:
            ids = ids_cpu.to(device, non_blocking=True)
            lengths = lengths_cpu.to(device, non_blocking=True)
            pooled = forward(ids, lengths, has_padding).float()
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
        if result is None:
            result = torch.empty(
                len(token_lists), pooled.shape[1], dtype=torch.float32, device=pooled.device
            )
        index = torch.tensor(members, dtype=torch.long).to(pooled.device, non_blocking=True)
        result.index_copy_(0, index, pooled)
        n_tokens = int(lengths_cpu.sum())
        stats.batches += 1
        stats.tokens += n_tokens
        stats.padded_tokens += ids_cpu.numel()
        if on_batch is not None:
            on_batch(len(members), n_tokens)

    for members in plan_batches([len(t) for t in token_lists], max_tokens, max_batch):
        run(members)
    if result is None:
        return torch.empty(0, 0)
    return result.cpu()  # the one synchronisation of the stage
