"""ESM-2 tokens: fair-esm's ESM-1b alphabet, BOS + residues (truncated) + EOS, right padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from esm.data import Alphabet

ALPHABET_ARCH = "ESM-1b"
TRUNCATION = 1024


def esm_alphabet() -> Alphabet:
    """The alphabet of every ESM-2 model (33 tokens)."""
    return Alphabet.from_architecture(ALPHABET_ARCH)


def tokenize(
    alphabet: Alphabet, seqs: Sequence[str], truncation_seq_length: int = TRUNCATION
) -> list[list[int]]:
    """BOS + residues (truncated) + EOS, the ids of fair-esm's batch converter."""
    bos, eos = alphabet.cls_idx, alphabet.eos_idx
    return [[bos, *_encode(alphabet, s)[:truncation_seq_length], eos] for s in seqs]


def _encode(alphabet: Alphabet, seq: str) -> list[int]:
    table = alphabet.tok_to_idx
    try:
        return [table[c] for c in seq]  # fast path: one token per character
    except KeyError:
        pass
    try:
        return list(alphabet.encode(seq))
    except KeyError as exc:
        raise ValueError(f"protein sequence has a character ESM-2 cannot encode: {exc}") from None


def pad(
    alphabet: Alphabet, token_lists: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded LongTensor[B, T] and residue counts LongTensor[B] (CPU)."""
    width = max(len(t) for t in token_lists)
    tokens = torch.full((len(token_lists), width), alphabet.padding_idx, dtype=torch.long)
    for row, ids in enumerate(token_lists):
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    lengths = torch.tensor([len(t) - 2 for t in token_lists], dtype=torch.long)
    return tokens, lengths
