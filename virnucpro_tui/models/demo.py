"""Demo models (docs/architecture.md#demo-models): tiny, random, in the real architectures and on-disk formats.

``build_demo_models`` writes a fair-esm ESM-2 checkpoint, a DNABERT-S-style directory (with a
BPE tokenizer trained on generated DNA) and two classifiers pickled the way the published ones
are (whole ``__main__.MLPClassifier`` modules). They load through the real loaders and run on
a CPU in seconds. Their scores are NOT biological predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from virnucpro_tui.core.filemode import plain_dir_mode
from virnucpro_tui.core.translation import CODON_TABLE
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.dnabert import DnabertConfig, DnabertModel, load_dnabert
from virnucpro_tui.models.esm import save_fair_esm_checkpoint
from virnucpro_tui.models.esm.tokens import esm_alphabet

DEMO_NOTICE = "Demo models with random weights: scores are NOT biological predictions."
DEMO_VERSION = 1
DEMO_SEED = 0
DEMO_ENV = "VIRNUCPRO_TUI_DEMO_DIR"

ESM_NAME = "esm2_t2_demo_UR50D"
ESM_LAYERS, ESM_DIM, ESM_HEADS = 2, 64, 4
DNABERT_DIR = "DNABERT-S-demo"
DNABERT_CFG = DnabertConfig(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    vocab_size=512,
)
SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]  # ids 0..4, as upstream
CLASSIFIER_HIDDEN = 32
TARGET_LOGIT_STD = 1.5  # spread of the demo scores on ORF-like DNA: ~0.05..0.95
_SENSE_CODONS = sorted(c for c, aa in CODON_TABLE.items() if aa != "*")


@dataclass(frozen=True)
class DemoModels:
    """Paths of a built demo model set."""

    root: Path
    esm: Path
    dnabert: Path
    classifier_300: Path
    classifier_500: Path


def demo_paths(root: str | Path) -> DemoModels:
    root = Path(root)
    return DemoModels(
        root=root,
        esm=root / f"{ESM_NAME}.pt",
        dnabert=root / DNABERT_DIR,
        classifier_300=root / "300_model.pth",
        classifier_500=root / "500_model.pth",
    )


def demo_marker(seed: int) -> dict:
    return {"demo": True, "notice": DEMO_NOTICE, "seed": seed, "version": DEMO_VERSION}


# --- generated DNA -----------------------------------------------------------------------


def _dna(rng: random.Random, length: int) -> str:
    gc = rng.uniform(0.3, 0.7)
    return "".join(rng.choices("ACGT", [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2], k=length))


def _orf(rng: random.Random, codons: int) -> str:
    """Stop-free, ORF-like DNA with a random GC bias."""
    gc = rng.uniform(0.3, 0.7)
    weights = [
        gc ** sum(b in "GC" for b in c) * (1 - gc) ** sum(b in "AT" for b in c)
        for c in _SENSE_CODONS
    ]
    return "ATG" + "".join(rng.choices(_SENSE_CODONS, weights, k=codons - 1))


def _corpus(rng: random.Random, n: int = 300) -> list[str]:
    """Tokenizer training text: a mix of random and ORF-like DNA, one sequence per line."""
    return [
        _orf(rng, rng.randint(60, 400)) if i % 2 else _dna(rng, rng.randint(200, 1500))
        for i in range(n)
    ]


def _calibration_frames(rng: random.Random, n: int = 96) -> list[tuple[str, str]]:
    """(nucleotide slice, protein) pairs like the pipeline's kept frames (docs/architecture.md#the-scientific-contract)."""
    frames = []
    for _ in range(n):
        dna = _orf(rng, rng.randint(30, 166)) + rng.choice("ACGT")
        protein = "".join(CODON_TABLE[dna[i : i + 3]] for i in range(0, len(dna) - 2, 3))
        frames.append((dna, protein))
    return frames


# --- weights -----------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Module init from a fixed seed, leaving the caller's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _jitter_layer_norms(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial LayerNorm weights and biases, so tests of the norms mean something."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.LayerNorm) and mod.weight is not None:
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def _cloned(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


# --- DNABERT-S ---------------------------------------------------------------------------


def train_dna_tokenizer(rng: random.Random, vocab_size: int) -> Any:
    """A BPE tokenizer trained on generated DNA, with DNABERT-S's special tokens and [CLS] ... [SEP]."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=list("ACGTN"),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(rng), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tok


def dnabert_config_json(cfg: DnabertConfig) -> dict[str, Any]:
    """The upstream DNABERT-S config.json keys, with the demo's sizes."""
    return {
        "_name_or_path": "virnucpro-tui/DNABERT-S-demo",
        "alibi_starting_size": cfg.alibi_starting_size,
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_bert.BertConfig",
            "AutoModel": "bert_layers.BertModel",
            "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
            "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification",
        },
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": cfg.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": cfg.num_attention_heads,
        "num_hidden_layers": cfg.num_hidden_layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.28.0",
        "type_vocab_size": cfg.type_vocab_size,
        "use_cache": True,
        "vocab_size": cfg.vocab_size,
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _build_dnabert(out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok = train_dna_tokenizer(random.Random(seed), DNABERT_CFG.vocab_size)
    cfg = replace(DNABERT_CFG, vocab_size=tok.get_vocab_size())
    with _seeded(seed + 1):
        model = DnabertModel(cfg, with_pooler=True)
    _jitter_layer_norms(model, torch.Generator().manual_seed(seed + 2))
    torch.save(_cloned(model.state_dict()), out / "pytorch_model.bin")
    tok.save(str(out / "tokenizer.json"))
    _write_json(out / "config.json", dnabert_config_json(cfg))
    specials = dict(
        zip(
            ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token"),
            SPECIAL_TOKENS,
            strict=True,
        )
    )
    _write_json(out / "special_tokens_map.json", specials)
    _write_json(
        out / "tokenizer_config.json",
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, **specials},
    )
    _write_json(out / "demo.json", demo_marker(seed))


# --- ESM-2 -------------------------------------------------------------------------------


def _build_esm(root: Path, seed: int) -> Any:
    """Write the checkpoint and its contact-regression file; return the fair-esm ESM2 module
    (for calibration)."""
    from esm.model.esm2 import ESM2

    with _seeded(seed + 3):
        model = ESM2(ESM_LAYERS, ESM_DIM, ESM_HEADS, esm_alphabet(), token_dropout=True)
    _jitter_layer_norms(model, torch.Generator().manual_seed(seed + 4))
    save_fair_esm_checkpoint(model, root / f"{ESM_NAME}.pt")
    return model.eval()


# --- classifiers -------------------------------------------------------------------------

# The classifier as the published train.py defines it: a top-level class of the script run as
# __main__, so that a pickled model names __main__.MLPClassifier (tests/models/test_classifier.py
# writes such a pickle with it too).
PUBLISHED_MLP_CLASS = """
class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_class):
        super(MLPClassifier, self).__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = self.hidden_layer(x)
        x = self.bn1(x)
        x = F.relu(x)
        x = self.dropout(x)
        x = self.output_layer(x)
        return x
"""

_PICKLE_SCRIPT = (
    '''
"""Pickle VirNucPro-style classifiers: run as __main__ so the class is __main__.MLPClassifier."""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

'''
    + PUBLISHED_MLP_CLASS
    + """

if __name__ == "__main__":
    for job in json.loads(sys.argv[1]):
        model = MLPClassifier(job["input_dim"], job["hidden_dim"], 2)
        model.load_state_dict(torch.load(job["state"], weights_only=True))
        model.eval()
        torch.save(model, job["out"])
"""
)


def _calibration_features(dnabert_dir: Path, esm_model: Any, seed: int) -> torch.Tensor:
    """Demo features (DNABERT mean ++ ESM mean) of generated ORF-like frames: [N, 128]."""
    frames = _calibration_frames(random.Random(seed + 5))
    bundle = load_dnabert(dnabert_dir)
    ids, mask = bundle.collate(bundle.tokenize([dna for dna, _ in frames]))
    dna_feats = bundle.forward_pooled(ids, mask)
    batch = esm_model.alphabet.get_batch_converter()(
        [(str(i), p) for i, (_, p) in enumerate(frames)]
    )
    with torch.inference_mode():
        reps = esm_model(batch[2], repr_layers=[ESM_LAYERS])["representations"][ESM_LAYERS]
    prot_feats = torch.stack([reps[i, 1 : len(p) + 1].mean(0) for i, (_, p) in enumerate(frames)])
    return torch.cat([dna_feats, prot_feats.float()], dim=1)


def _classifier_state(features: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Random MLP weights, with BatchNorm stats and output scale fitted to the features."""
    gen = torch.Generator().manual_seed(seed)
    n_in, hidden = features.shape[1], CLASSIFIER_HIDDEN
    w1 = (torch.rand(hidden, n_in, generator=gen) * 2 - 1) * (6 / (n_in + hidden)) ** 0.5  # xavier
    b1 = 0.05 * torch.randn(hidden, generator=gen)
    pre = features @ w1.T + b1
    bn_w = 1 + 0.2 * torch.randn(hidden, generator=gen)
    bn_b = 0.2 * torch.randn(hidden, generator=gen)
    mean, var = pre.mean(0), pre.var(0) + 1e-3
    z = torch.relu((pre - mean) / torch.sqrt(var + 1e-5) * bn_w + bn_b)
    w2 = torch.randn(2, hidden, generator=gen)
    diff = z @ (w2[1] - w2[0])
    scale = TARGET_LOGIT_STD / diff.std().clamp_min(1e-6)
    w2 = w2 * scale
    b2 = torch.tensor([0.0, -float((diff * scale).median())])  # median score ~0.5
    return {
        "hidden_layer.weight": w1,
        "hidden_layer.bias": b1,
        "bn1.weight": bn_w,
        "bn1.bias": bn_b,
        "bn1.running_mean": mean,
        "bn1.running_var": var,
        "bn1.num_batches_tracked": torch.tensor(1000),
        "output_layer.weight": w2,
        "output_layer.bias": b2,
    }


def _pickle_classifiers(jobs: list[tuple[dict[str, torch.Tensor], Path]], work: Path) -> None:
    """Save whole modules from a subprocess whose __main__ defines MLPClassifier."""
    script = work / "pickle_mlp.py"
    script.write_text(_PICKLE_SCRIPT)
    spec = []
    for i, (state, out) in enumerate(jobs):
        torch.save(state, work / f"state{i}.pt")
        n_hidden, n_in = state["hidden_layer.weight"].shape
        spec.append(
            {
                "state": str(work / f"state{i}.pt"),
                "out": str(out),
                "input_dim": n_in,
                "hidden_dim": n_hidden,
            }
        )
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(spec)], capture_output=True, text=True, cwd=work
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"{work}: could not pickle the demo classifiers ({tail})")


# --- public ------------------------------------------------------------------------------


def build_demo_models(out_dir: str | Path, seed: int = 0) -> DemoModels:
    """Write the demo model set into ``out_dir``; the same seed gives the same weights."""
    paths = demo_paths(out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    _build_dnabert(paths.dnabert, seed)
    esm_model = _build_esm(paths.root, seed)
    features = _calibration_features(paths.dnabert, esm_model, seed)
    with tempfile.TemporaryDirectory(prefix="demo-mlp-") as work:
        _pickle_classifiers(
            [
                (_classifier_state(features, seed + 300), paths.classifier_300),
                (_classifier_state(features, seed + 500), paths.classifier_500),
            ],
            Path(work),
        )
    _write_json(paths.root / "demo.json", demo_marker(seed))  # written last: marks completion
    return paths


def default_demo_dir() -> Path:
    env = os.environ.get(DEMO_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "virnucpro-tui" / "demo-models" / f"v{DEMO_VERSION}"


def _complete(root: Path) -> bool:
    try:
        marker = json.loads((root / "demo.json").read_text())
    except (OSError, ValueError):
        return False
    paths = demo_paths(root)
    files = [
        paths.esm,
        paths.classifier_300,
        paths.classifier_500,
        paths.dnabert / "pytorch_model.bin",
    ]
    return (
        isinstance(marker, dict)
        and marker.get("version") == DEMO_VERSION
        and marker.get("seed") == DEMO_SEED
        and all(f.is_file() for f in files)
    )


def _check_not_foreign(target: Path) -> None:
    """Never replace a non-empty directory that is not one of our demo sets."""
    if target.is_dir() and any(target.iterdir()) and not (target / "demo.json").is_file():
        raise ModelError(f"{target}: exists and is not a demo model directory; choose another")
    if target.exists() and not target.is_dir():
        raise ModelError(f"{target}: exists and is not a directory")


def _install(built: Path, target: Path) -> None:
    """Rename a finished build into place; a concurrent winner or an old demo set is handled."""
    try:
        os.rename(built, target)  # also replaces an empty directory
        return
    except OSError:
        if _complete(target):
            return  # another process finished first
    _check_not_foreign(target)
    stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{random.getrandbits(32):08x}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(target, stale)  # an incomplete or outdated demo set of ours
    shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(built, target)
    except OSError:
        if not _complete(target):
            raise


def ensure_demo_models(cache_dir: str | Path | None = None) -> DemoModels:
    """Build the demo models once (atomically; safe when processes race), then reuse them."""
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_demo_dir()
    if _complete(target):
        return demo_paths(target)
    _check_not_foreign(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
        build.chmod(plain_dir_mode())  # mkdtemp makes it private; the cache is plain data
    except OSError as exc:
        raise ModelError(f"{target}: cannot create the demo model cache ({exc.strerror})") from exc
    try:
        build_demo_models(build, seed=DEMO_SEED)
        _install(build, target)
    except OSError as exc:
        raise ModelError(f"{target}: cannot write the demo models ({exc})") from exc
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return demo_paths(target)
