"""``load_esm``: ESM-2 from a fair-esm checkpoint file or a transformers directory, on the CPU
in fp32; ``check_esm``: the same checks without reading any tensor data (pre-flight)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from esm.data import Alphabet

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.device_copy import place
from virnucpro_tui.models.esm import tokens
from virnucpro_tui.models.esm.encoder import EsmEncoder, mean_pool
from virnucpro_tui.models.esm.fair import FairEsmCheckpoint, encoder_from_fair, read_fair_checkpoint
from virnucpro_tui.models.esm.hf import (
    TransformersEsm,
    check_transformers_dir,
    encoder_from_transformers,
    transformers_dir,
)
from virnucpro_tui.models.safe_load import has_demo_marker


@dataclass
class EsmBundle:
    encoder: EsmEncoder
    alphabet: Alphabet
    num_layers: int
    embed_dim: int
    source: Path
    format: str  # "fair-esm" | "transformers"
    demo: bool

    @property
    def device(self) -> torch.device:
        return self.encoder.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.embed_tokens.weight.dtype

    def to(
        self, device: torch.device | str, dtype: torch.dtype | None = None, staged: bool = False
    ) -> EsmBundle:
        """Onto ``device`` in ``dtype``; ``staged``: through page-locked buffers."""
        place(self.encoder, device, dtype, staged)
        return self

    def tokenize(
        self, seqs: Sequence[str], truncation_seq_length: int = tokens.TRUNCATION
    ) -> list[list[int]]:
        """BOS + residues (truncated) + EOS, the ids of fair-esm's batch converter."""
        return tokens.tokenize(self.alphabet, seqs, truncation_seq_length)

    def pad(self, token_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded LongTensor[B, T] and residue counts LongTensor[B] (CPU)."""
        return tokens.pad(self.alphabet, token_lists)

    def forward_pooled(
        self, ids: torch.Tensor, lengths: torch.Tensor, has_padding: bool | None = None
    ) -> torch.Tensor:
        """Mean final representation over residues 1..len, float32 [B, D], on the model's device.

        Pass ``has_padding`` when it is known on the host, so a GPU batch needs no sync."""
        if has_padding is None:
            has_padding = bool((lengths + 2 < ids.shape[1]).any())
        with torch.inference_mode():
            hidden = self.encoder(ids.to(self.device, non_blocking=True), has_padding)
            return mean_pool(hidden, lengths)

    def embed(
        self, seqs: Sequence[str], truncation_seq_length: int = tokens.TRUNCATION
    ) -> torch.Tensor:
        """Convenience: tokenize, pad and pool one batch of proteins."""
        ids, lengths = self.pad(self.tokenize(seqs, truncation_seq_length))
        return self.forward_pooled(ids, lengths)


def check_esm(path: str | Path) -> FairEsmCheckpoint | TransformersEsm:
    """Everything ``load_esm`` checks (format, structure, tensor names and shapes, the
    contact-regression file), reading no tensor data: the checkpoint is memory-mapped."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: ESM-2 model not found")
    hf_dir = transformers_dir(path)
    if hf_dir is not None:
        return check_transformers_dir(hf_dir)
    if path.is_dir() or path.suffix == ".safetensors":
        raise ModelError(f"{path}: not an ESM-2 model directory (no config.json)")
    return read_fair_checkpoint(path)


def load_esm(path: str | Path, dtype: torch.dtype = torch.float32) -> EsmBundle:
    """Load ESM-2 on the CPU in ``dtype`` (default fp32) from a fair-esm checkpoint file or a
    transformers directory; the weights of a fair-esm file stay memory-mapped when stored in
    ``dtype`` (the released files are fp16)."""
    checked = check_esm(path)
    if isinstance(checked, TransformersEsm):
        encoder, source, fmt = encoder_from_transformers(checked), checked.directory, "transformers"
    else:
        encoder, source, fmt = encoder_from_fair(checked, dtype), checked.path, "fair-esm"
    return EsmBundle(
        encoder=encoder,
        alphabet=tokens.esm_alphabet(),
        num_layers=encoder.num_layers,
        embed_dim=encoder.embed_dim,
        source=source,
        format=fmt,
        demo=has_demo_marker(source),
    )
