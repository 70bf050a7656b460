"""What a device holds: the bytes of a model, the cache given back, the tokens of a batch."""

from __future__ import annotations

from typing import Any

import torch


def param_bytes(bundle: Any) -> int:
    """Bytes of a model's parameters and buffers."""
    module = getattr(bundle, "model", None) or getattr(bundle, "encoder", None)
    if module is None:
        return 0
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def empty_device_cache(device: torch.device) -> int:
    """Release cached blocks; return the bytes of reserved memory given back."""
    if device.type != "cuda":
        return 0
    before = torch.cuda.memory_reserved(device)
    torch.cuda.empty_cache()
    return max(int(before - torch.cuda.memory_reserved(device)), 0)


def default_gpu_token_budget(device: torch.device, which: str) -> int:
    """Tokens per batch, sized from the device's total memory (not its free memory, so the same
    card always cuts the same batches and results stay byte-identical across runs)."""
    total_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    per_gib = 512 if which == "esm" else 2048
    return int(min(max(total_gib * per_gib, 8192), 262144 if which == "dnabert" else 131072))
