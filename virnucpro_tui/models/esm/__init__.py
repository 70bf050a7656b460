"""ESM-2 protein embeddings, split as fair-esm splits them: the encoder (``encoder``), tokens
(``tokens``), fair-esm checkpoints and the reference (``fair``), transformers directories
(``hf``) and the loader (``load``). The names below are the public ones."""

from virnucpro_tui.models.esm.encoder import (
    MASK_RATIO_TRAIN,
    EncoderLayer,
    EncoderShape,
    EsmEncoder,
    apply_rotary,
    mean_pool,
)
from virnucpro_tui.models.esm.fair import (
    embed_proteins_published,
    load_fair_esm_reference,
    save_fair_esm_checkpoint,
    write_fair_esm_checkpoint,
)
from virnucpro_tui.models.esm.load import EsmBundle, check_esm, load_esm

__all__ = [
    "MASK_RATIO_TRAIN",
    "EncoderLayer",
    "EncoderShape",
    "EsmBundle",
    "EsmEncoder",
    "apply_rotary",
    "check_esm",
    "embed_proteins_published",
    "load_esm",
    "load_fair_esm_reference",
    "mean_pool",
    "save_fair_esm_checkpoint",
    "write_fair_esm_checkpoint",
]
