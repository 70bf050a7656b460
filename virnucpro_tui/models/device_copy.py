"""A module's weights onto the GPU through a few reused page-locked buffers.

``module.to("cuda")`` copies each tensor from pageable memory (here: the checkpoint's
memory-mapped pages) on the current stream, which the driver stages through its own small
buffer, and which waits behind whatever the other model's warm-up has queued there. ``move``
copies the bytes into one of ``BUFFERS`` page-locked buffers and sends each piece asynchronously
on a stream of its own, filling the next buffer while the last one travels; it ends when the
copies have landed. Tensors are sent in their stored dtype and cast on the device.

On the CPU the same code runs with plain buffers, synchronously (the tests check it there).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

CHUNK_BYTES = 64 << 20
BUFFERS = 3


def place(
    module: nn.Module,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
    staged: bool = False,
) -> None:
    """``module`` onto ``device`` in ``dtype``: through the staging buffers when ``staged``,
    else ``module.to``."""
    if staged:
        move(module, torch.device(device), dtype)
    else:
        module.to(device=device, dtype=dtype)


def move(
    module: nn.Module,
    device: torch.device,
    dtype: torch.dtype | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> nn.Module:
    """``module.to(device, dtype)``: floating-point parameters and buffers cast to ``dtype``,
    every tensor copied through the staging buffers. Tensors shared between modules stay
    shared."""
    sent: dict[int, torch.Tensor] = {}
    try:
        with _Stager(device, chunk_bytes) as stager:
            for tensor in [*module.parameters(), *module.buffers()]:
                if id(tensor) not in sent:
                    sent[id(tensor)] = stager.send(tensor.detach())
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError:  # no page-locked memory to be had: the plain copy
        sent.clear()
        return module.to(device, dtype)

    def placed(tensor: torch.Tensor) -> torch.Tensor:
        moved = sent.get(id(tensor))
        if moved is None:  # not a parameter or buffer of this module (a gradient): as .to
            moved = tensor.to(device)
        floating = moved.is_floating_point() or moved.is_complex()
        return moved.to(dtype) if dtype is not None and floating else moved

    return module._apply(placed)


class _Stager:
    def __init__(self, device: torch.device, chunk_bytes: int) -> None:
        self.device, self.chunk = device, chunk_bytes
        self.cuda = device.type == "cuda"
        self.stream: Any = torch.cuda.Stream(device) if self.cuda else None
        self.buffers = [
            torch.empty(chunk_bytes, dtype=torch.uint8, pin_memory=self.cuda)
            for _ in range(BUFFERS)
        ]
        self.landed: list[Any] = [None] * BUFFERS  # an event per buffer: its copy is done
        self.turn = 0

    def __enter__(self) -> _Stager:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.stream.synchronize()

    def send(self, tensor: torch.Tensor) -> torch.Tensor:
        """A copy of ``tensor`` on the device (its copy may still be in flight until exit)."""
        source = tensor.contiguous().reshape(-1).view(torch.uint8)
        with torch.cuda.stream(self.stream) if self.cuda else contextlib.nullcontext():
            target = torch.empty(tensor.shape, dtype=tensor.dtype, device=self.device)
        flat = target.reshape(-1).view(torch.uint8)
        for start in range(0, source.numel(), self.chunk):
            end = min(start + self.chunk, source.numel())
            self._piece(source[start:end], flat[start:end])
        return target

    def _piece(self, source: torch.Tensor, target: torch.Tensor) -> None:
        turn, self.turn = self.turn, (self.turn + 1) % BUFFERS
        if self.landed[turn] is not None:
            self.landed[turn].synchronize()  # the buffer's last piece has left it
        buffer = self.buffers[turn][: source.numel()]
        buffer.copy_(source)
        if not self.cuda:
            target.copy_(buffer)
            return
        with torch.cuda.stream(self.stream):
            target.copy_(buffer, non_blocking=True)
            self.landed[turn] = torch.cuda.Event()
            self.landed[turn].record(self.stream)
