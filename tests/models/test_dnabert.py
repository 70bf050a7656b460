"""DNABERT-S in plain PyTorch: ALiBi, exactness against a naive reference, padding, loading."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from tokenizers.trainers import BpeTrainer

from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.dnabert import (
    DnabertBundle,
    DnabertConfig,
    DnabertModel,
    alibi_slopes,
    embed_dna_published,
    load_dnabert,
)
from virnucpro_tui.models.identity import HashCache, model_identity

# 12 heads: the 8-head power-of-two series, then every other slope of the 16-head series.
SLOPES_12 = [
    2**-1,
    2**-2,
    2**-3,
    2**-4,
    2**-5,
    2**-6,
    2**-7,
    2**-8,
    2**-0.5,
    2**-1.5,
    2**-2.5,
    2**-3.5,
]
CFG = DnabertConfig(
    hidden_size=96, num_hidden_layers=2, num_attention_heads=12, intermediate_size=80, vocab_size=64
)
SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]


def random_model(cfg: DnabertConfig = CFG, seed: int = 0, pooler: bool = True) -> DnabertModel:
    """Random weights with non-trivial LayerNorms, in eval mode."""
    torch.manual_seed(seed)
    model = DnabertModel(cfg, with_pooler=pooler)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
    return model.eval()


def dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


def train_tokenizer(vocab_size: int = 64) -> Tokenizer:
    rng = random.Random(1)
    tok = Tokenizer(BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator([dna(rng, 400) for _ in range(50)], trainer=trainer)
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    return tok


# --- a naive reference, written independently of the module ------------------------------


def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def reference_hidden(model: DnabertModel, ids: list[int]) -> torch.Tensor:
    """Last hidden layer of one sequence, per-head loops, float64."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    cfg, n = model.cfg, len(ids)
    h, heads, inter = cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size
    d = h // heads
    x = (
        sd["embeddings.word_embeddings.weight"][ids]
        + sd["embeddings.token_type_embeddings.weight"][0]
    )
    x = _ln(
        x, sd["embeddings.LayerNorm.weight"], sd["embeddings.LayerNorm.bias"], cfg.layer_norm_eps
    )
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        qkv = x @ sd[p + "attention.self.Wqkv.weight"].T + sd[p + "attention.self.Wqkv.bias"]
        q, k, v = qkv[:, :h], qkv[:, h : 2 * h], qkv[:, 2 * h :]
        outs = []
        for hd in range(heads):
            sl = slice(hd * d, (hd + 1) * d)
            alibi = torch.tensor(
                [[-SLOPES_12[hd] * abs(a - b) for b in range(n)] for a in range(n)],
                dtype=torch.float64,
            )
            scores = q[:, sl] @ k[:, sl].T / math.sqrt(d) + alibi
            outs.append(torch.softmax(scores, dim=-1) @ v[:, sl])
        attn = torch.cat(outs, dim=-1)
        dense = (
            attn @ sd[p + "attention.output.dense.weight"].T + sd[p + "attention.output.dense.bias"]
        )
        x = _ln(
            dense + x,
            sd[p + "attention.output.LayerNorm.weight"],
            sd[p + "attention.output.LayerNorm.bias"],
            cfg.layer_norm_eps,
        )
        g = x @ sd[p + "mlp.gated_layers.weight"].T
        gate, up = g[:, :inter], g[:, inter:]
        act = 0.5 * gate * (1 + torch.erf(gate / math.sqrt(2)))
        out = (act * up) @ sd[p + "mlp.wo.weight"].T + sd[p + "mlp.wo.bias"]
        x = _ln(
            out + x,
            sd[p + "mlp.layernorm.weight"],
            sd[p + "mlp.layernorm.bias"],
            cfg.layer_norm_eps,
        )
    return x


# --- ALiBi and exactness ---------------------------------------------------------------


def test_alibi_slopes_known_values() -> None:
    assert alibi_slopes(12) == pytest.approx(SLOPES_12, rel=1e-15)
    assert alibi_slopes(8) == pytest.approx([2.0**-i for i in range(1, 9)], rel=1e-15)
    assert alibi_slopes(4) == pytest.approx([2**-2, 2**-4, 2**-6, 2**-8], rel=1e-15)
    assert alibi_slopes(6) == pytest.approx([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3], rel=1e-15)


def test_alibi_bias_is_symmetric_and_cached() -> None:
    model = random_model()
    bias = model.alibi(7, torch.device("cpu"), torch.float32)
    assert bias.shape == (1, 12, 7, 7)
    assert bias[0, 8, 2, 6].item() == pytest.approx(-(2**-0.5) * 4, rel=1e-6)
    assert bias[0, 0, 5, 1].item() == pytest.approx(-0.5 * 4)
    assert torch.equal(bias, bias.transpose(-1, -2))
    assert model.alibi(7, torch.device("cpu"), torch.float32) is bias  # cached
    assert model.alibi(7, torch.device("cpu"), torch.bfloat16).dtype == torch.bfloat16


def test_matches_naive_reference() -> None:
    model = random_model()
    rng = random.Random(3)
    ids = [1] + [rng.randrange(5, CFG.vocab_size) for _ in range(37)] + [2]
    ours = model(torch.tensor([ids]))[0].double()
    ref = reference_hidden(model, ids)
    assert ref.abs().max() > 0.5  # not a degenerate comparison
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_batched_padding_equals_one_at_a_time() -> None:
    model = random_model()
    bundle = DnabertBundle(model, train_tokenizer(), CFG, Path("."), "0" * 64)
    rng = random.Random(4)
    seqs = [[1, 2], [1] + [rng.randrange(5, 64) for _ in range(300)] + [2]]
    seqs += [[1] + [rng.randrange(5, 64) for _ in range(n)] + [2] for n in (5, 41, 120)]
    ids, mask = bundle.collate(seqs)
    assert ids.shape == (5, 302) and int(mask.sum()) == sum(len(s) for s in seqs)
    batched = bundle.forward_pooled(ids, mask)
    assert batched.dtype == torch.float32 and batched.shape == (5, CFG.hidden_size)
    for row, toks in enumerate(seqs):
        alone = model(torch.tensor([toks]))[0].mean(dim=0)  # CLS and SEP included
        torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=0)
    # The pad id does not matter, and lengths [B] work as the mask.
    other = ids.masked_fill(~mask, 7)
    torch.testing.assert_close(
        bundle.forward_pooled(other, mask.sum(1)), batched, atol=1e-5, rtol=0
    )


def test_pooled_mean_includes_cls_and_sep() -> None:
    model = random_model()
    bundle = DnabertBundle(model, None, CFG, Path("."), "")
    ids = torch.tensor([[1, 9, 10, 11, 2]])
    hidden = model(ids)[0]
    pooled = bundle.forward_pooled(ids, torch.ones_like(ids))[0]
    torch.testing.assert_close(pooled, hidden.mean(0))
    assert not torch.allclose(pooled, hidden[1:-1].mean(0), atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_close_to_fp32(dtype: torch.dtype) -> None:
    model = random_model()
    bundle = DnabertBundle(model, None, CFG, Path("."), "")
    rng = random.Random(5)
    seqs = [[1] + [rng.randrange(5, 64) for _ in range(n)] + [2] for n in (3, 60, 150)]
    ids = torch.full((3, 152), 3)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in seqs])
    ref = bundle.forward_pooled(ids, lengths)
    half = bundle.to("cpu", dtype).forward_pooled(ids, lengths)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    cos = torch.nn.functional.cosine_similarity(half, ref, dim=1)
    assert cos.min() > 0.995
    assert (half - ref).abs().max() < 0.1


# --- loading -----------------------------------------------------------------------------


def write_model_dir(root: Path, model: DnabertModel, fmt: str = "bin", prefix: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    state = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    if prefix:
        state["cls.predictions.transform.dense.weight"] = torch.zeros(
            CFG.hidden_size, CFG.hidden_size
        )
        state["cls.predictions.decoder.bias"] = torch.zeros(CFG.vocab_size)
    if fmt == "bin":
        torch.save(state, root / "pytorch_model.bin")
    else:
        save_file(state, str(root / "model.safetensors"))
    cfg = {k: getattr(CFG, k) for k in CFG.__dataclass_fields__}
    (root / "config.json").write_text(json.dumps({"model_type": "bert", **cfg}))
    train_tokenizer().save(str(root / "tokenizer.json"))
    return root


def assert_same_weights(bundle: DnabertBundle, model: DnabertModel) -> None:
    ids = torch.tensor([[1, 7, 8, 9, 2]])
    torch.testing.assert_close(bundle.model(ids), model(ids), atol=0, rtol=0)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_load_directory(tmp_path: Path, fmt: str) -> None:
    model = random_model(seed=1)
    root = write_model_dir(tmp_path / "m", model, fmt)
    bundle = load_dnabert(root)
    assert_same_weights(bundle, model)
    weights = root / ("pytorch_model.bin" if fmt == "bin" else "model.safetensors")
    identity = model_identity(root, HashCache(tmp_path / "hashes.json"))
    assert identity["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert bundle.source == root and bundle.demo is False and bundle.config == CFG
    assert bundle.model.pooler is not None and not bundle.model.training
    assert bundle.model.embeddings.word_embeddings.weight.dtype == torch.float32
    assert load_dnabert(weights).source == root  # a file inside the directory


def test_load_bert_prefix_and_mlm_head(tmp_path: Path) -> None:
    model = random_model(seed=2, pooler=False)
    root = write_model_dir(tmp_path / "m", model, prefix="bert.")
    bundle = load_dnabert(root)
    assert bundle.model.pooler is None
    assert_same_weights(bundle, model)


def test_load_hf_cache_layout_and_demo_marker(tmp_path: Path) -> None:
    repo = tmp_path / "models--zhihan1996--DNABERT-S"
    write_model_dir(repo / "snapshots" / "abc123", random_model(seed=3))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    (repo / "snapshots" / "abc123" / "demo.json").write_text('{"demo": true}')
    bundle = load_dnabert(repo)
    assert bundle.source == repo / "snapshots" / "abc123" and bundle.demo is True


def test_missing_key_names_the_file(tmp_path: Path) -> None:
    model = random_model()
    root = write_model_dir(tmp_path / "m", model)
    state = torch.load(root / "pytorch_model.bin", weights_only=True)
    del state["encoder.layer.1.mlp.wo.weight"]
    torch.save(state, root / "pytorch_model.bin")
    with pytest.raises(
        ModelError, match=r"pytorch_model\.bin.*missing.*encoder\.layer\.1\.mlp\.wo\.weight"
    ):
        load_dnabert(root)


def test_unexpected_key_and_shape_mismatch(tmp_path: Path) -> None:
    model = random_model()
    root = write_model_dir(tmp_path / "m", model)
    state = torch.load(root / "pytorch_model.bin", weights_only=True)
    torch.save(
        {**state, "encoder.layer.9.mlp.wo.weight": torch.zeros(1)}, root / "pytorch_model.bin"
    )
    with pytest.raises(ModelError, match=r"unexpected encoder\.layer\.9"):
        load_dnabert(root)
    torch.save(state, root / "pytorch_model.bin")
    cfg = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 40}))
    with pytest.raises(ModelError, match=r"gated_layers\.weight has shape"):
        load_dnabert(root)


def test_bad_inputs_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_dnabert(tmp_path / "nope")
    root = write_model_dir(tmp_path / "m", random_model())
    (root / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="no tokenizer.json"):
        load_dnabert(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no DNABERT-S weights"):
        load_dnabert(empty)
    root = write_model_dir(tmp_path / "m2", random_model())
    (root / "pytorch_model.bin").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin"):
        load_dnabert(root)


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_model_dir(tmp_path / "m", random_model())
    state = torch.load(root / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "evil": _RunsCode()}, root / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin.*(refused|allow)"):
        load_dnabert(root)
    assert "must never run" not in capsys.readouterr().out


# --- tokenizer and the published settings ------------------------------------------------


def test_tokenizer_cls_sep_no_truncation(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "m", random_model())
    tok = Tokenizer.from_file(str(root / "tokenizer.json"))
    tok.enable_truncation(max_length=16)  # a saved truncation setting is ignored
    tok.enable_padding(length=600)
    tok.save(str(root / "tokenizer.json"))
    bundle = load_dnabert(root)
    seq = dna(random.Random(6), 10_000)
    (ids,) = bundle.tokenize([seq])
    assert ids[0] == 1 and ids[-1] == 2 and len(ids) > 1000
    plain = Tokenizer.from_file(str(root / "tokenizer.json"))
    plain.no_truncation()
    plain.no_padding()
    assert ids == plain.encode(seq).ids
    assert "".join(bundle.tokenizer.id_to_token(i) for i in ids[1:-1]) == seq
    assert bundle.pad_id == 3


def test_published_settings_match_batched(tmp_path: Path) -> None:
    model = random_model(seed=4)
    bundle = load_dnabert(write_model_dir(tmp_path / "m", model))
    rng = random.Random(7)
    seqs = [dna(rng, n) for n in (31, 301, 120, 1000)]
    published = embed_dna_published(bundle, seqs)
    ids, mask = bundle.collate(bundle.tokenize(seqs))
    torch.testing.assert_close(bundle.forward_pooled(ids, mask), published, atol=1e-5, rtol=0)
    (first,) = bundle.tokenize(seqs[:1])
    torch.testing.assert_close(
        published[0], model(torch.tensor([first]))[0].mean(0), atol=0, rtol=0
    )
