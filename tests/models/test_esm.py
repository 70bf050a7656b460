"""EsmEncoder against fair-esm's own ESM2 and transformers' EsmModel on the same random weights."""

from __future__ import annotations

import json
import os
import pickle
from argparse import Namespace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from esm.data import Alphabet
from esm.model.esm2 import ESM2

from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.esm import (
    EsmEncoder,
    embed_proteins_published,
    load_esm,
    load_fair_esm_reference,
    mean_pool,
    save_fair_esm_checkpoint,
)
from virnucpro_tui.models.esm import encoder as esm_mod
from virnucpro_tui.models.identity import HashCache, model_identity

FP32_TOL = 1e-5
LAYERS, DIM, HEADS = 3, 96, 4
PROTEINS = [
    "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ",
    "MKV",
    "ACDEFGHIKLMNPQRSTVWYACDEFGHIKLMNPQRSTVWYW",
    "W",
    "MSTNPKPQRKTKRNTNRRPQDVKFPGG",
]


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random, LayerNorms included, with O(1) activations."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim == 2:
                param.copy_(noise * param.shape[-1] ** -0.5)
            elif "norm" in name.lower() and name.endswith(("weight", "gamma")):
                param.copy_(1.0 + 0.2 * noise)
            else:
                param.copy_(0.1 * noise)
    return module.eval()


@pytest.fixture(scope="module")
def alphabet() -> Alphabet:
    return Alphabet.from_architecture("ESM-1b")


@pytest.fixture(scope="module")
def fair_model(alphabet: Alphabet) -> ESM2:
    model = ESM2(LAYERS, DIM, HEADS, alphabet=alphabet, token_dropout=True)
    return randomise(model)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, fair_model: ESM2) -> Path:
    # fp16 storage, like the released 3B file: inv_freq is stored rounded and must be used as is.
    path = tmp_path_factory.mktemp("esm") / "esm2_t3_tiny.pt"
    return save_fair_esm_checkpoint(fair_model, path, dtype=torch.float16)


def encoder_from(model: ESM2) -> EsmEncoder:
    encoder = EsmEncoder(model.num_layers, model.embed_dim, model.attention_heads)
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith(("lm_head.", "contact_head.")) and not k.endswith("inv_freq")
    }
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def fair_tokens(alphabet: Alphabet, seqs: list[str], truncation: int = 1024) -> torch.Tensor:
    _, _, tokens = alphabet.get_batch_converter(truncation)(
        [(str(i), s) for i, s in enumerate(seqs)]
    )
    return tokens


def fair_final(model: ESM2, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens, repr_layers=[model.num_layers])["representations"][model.num_layers]


def manual_means(rep: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    return torch.stack([rep[i, 1 : n + 1].mean(0) for i, n in enumerate(lengths)])


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# --- tokens ----------------------------------------------------------------------------------


def test_tokens_equal_fair_esm_batch_converter(checkpoint: Path, alphabet: Alphabet) -> None:
    bundle = load_esm(checkpoint)
    seqs = [*PROTEINS, "MK<mask>VL", "A" * 1030]
    tokens, lengths = bundle.pad(bundle.tokenize(seqs))
    expected = fair_tokens(alphabet, seqs)
    assert torch.equal(tokens, expected)
    assert lengths.tolist() == [len(s) for s in PROTEINS] + [5, 1024]
    assert tokens[0, 0] == alphabet.cls_idx and tokens[0, len(PROTEINS[0]) + 1] == alphabet.eos_idx


def test_tokenize_rejects_unknown_characters(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        load_esm(checkpoint).tokenize(["MKjV"])


# --- the forward against fair-esm -----------------------------------------------------------


def test_encoder_matches_fair_esm_on_padded_batch(
    fair_model: ESM2, alphabet: Alphabet, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = encoder_from(fair_model)
    tokens = fair_tokens(alphabet, PROTEINS)
    masks = _record_sdpa_masks(monkeypatch)
    with torch.no_grad():
        ours = encoder(tokens)
    reference = fair_final(fair_model, tokens)
    real = tokens.ne(alphabet.padding_idx)
    diff = max_diff(ours[real], reference[real])
    print(f"padded batch: max |EsmEncoder - fair-esm| = {diff:.2e}")
    assert diff < FP32_TOL
    assert masks and all(m is not None and m.dtype == torch.bool for m in masks)

    lengths = torch.tensor([len(s) for s in PROTEINS])
    pooled = mean_pool(ours, lengths)
    expected = manual_means(reference, lengths.tolist())
    pooled_diff = max_diff(pooled, expected)
    print(f"padded batch: max pooled diff = {pooled_diff:.2e}")
    assert pooled_diff < FP32_TOL


def test_encoder_matches_fair_esm_without_padding_and_uses_no_mask(
    fair_model: ESM2, alphabet: Alphabet, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = encoder_from(fair_model)
    seqs = ["MKTAYIAKQRQISFVKSHFS", "ACDEFGHIKLMNPQRSTVWY", "WWWWWPPPPPGGGGGKKKKK"]
    tokens = fair_tokens(alphabet, seqs)
    assert not tokens.eq(alphabet.padding_idx).any()
    masks = _record_sdpa_masks(monkeypatch)
    with torch.no_grad():
        ours = encoder(tokens)
    diff = max_diff(ours, fair_final(fair_model, tokens))
    print(f"unpadded batch: max diff = {diff:.2e}")
    assert diff < FP32_TOL
    assert masks == [None] * LAYERS  # no mask at all: flash attention stays possible


def test_token_dropout_rescale_with_mask_tokens(fair_model: ESM2, alphabet: Alphabet) -> None:
    encoder = encoder_from(fair_model)
    seqs = ["MK<mask>VLA<mask>", "MKTAYIAK"]
    tokens = fair_tokens(alphabet, seqs)
    with torch.no_grad():
        ours = encoder(tokens)
    real = tokens.ne(alphabet.padding_idx)
    assert max_diff(ours[real], fair_final(fair_model, tokens)[real]) < FP32_TOL
    # the rescale really applies: without token dropout the result differs
    encoder.token_dropout = False
    with torch.no_grad():
        plain = encoder(tokens)
    assert max_diff(plain[real], ours[real]) > 1e-3


def test_pooling_excludes_bos_eos_and_padding(fair_model: ESM2, alphabet: Alphabet) -> None:
    encoder = encoder_from(fair_model)
    tokens = fair_tokens(alphabet, PROTEINS)
    lengths = torch.tensor([len(s) for s in PROTEINS])
    with torch.no_grad():
        hidden = encoder(tokens)
    manual = torch.stack([hidden[i, 1 : n + 1].sum(0) / n for i, n in enumerate(lengths.tolist())])
    pooled = mean_pool(hidden, lengths)
    assert pooled.dtype == torch.float32 and pooled.shape == (len(PROTEINS), DIM)
    assert max_diff(pooled, manual) < 1e-6
    with_specials = hidden[1, 0 : len(PROTEINS[1]) + 2].mean(0)  # BOS and EOS included
    assert max_diff(pooled[1], with_specials) > 1e-3


# --- fair-esm checkpoint files ---------------------------------------------------------------


def test_checkpoint_needs_namespace_allow_listed(checkpoint: Path) -> None:
    with pytest.raises(pickle.UnpicklingError, match="argparse.Namespace"):
        torch.load(checkpoint, weights_only=True)  # as released: cfg['model'] is a Namespace


def test_checkpoint_keys_use_released_prefixes(checkpoint: Path) -> None:
    with torch.serialization.safe_globals([Namespace]):
        data = torch.load(checkpoint, weights_only=True)
    keys = set(data["model"])
    assert "encoder.sentence_encoder.embed_tokens.weight" in keys
    assert "encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq" in keys
    assert "encoder.lm_head.dense.weight" in keys
    assert isinstance(data["cfg"]["model"], Namespace)
    assert checkpoint.with_name(f"{checkpoint.stem}-contact-regression.pt").is_file()


def test_load_esm_and_fair_reference_give_identical_embeddings(
    checkpoint: Path, alphabet: Alphabet
) -> None:
    bundle = load_esm(checkpoint)
    reference, ref_alphabet = load_fair_esm_reference(checkpoint)
    assert bundle.format == "fair-esm" and not bundle.demo
    assert (bundle.num_layers, bundle.embed_dim) == (LAYERS, DIM)
    assert model_identity(checkpoint, HashCache(checkpoint.with_suffix(".hashes")))["sha256"] == (
        sha256_file(checkpoint)
    )
    assert bundle.encoder.embed_tokens.weight.dtype == torch.float32
    # the stored (fp16-rounded) rotary frequencies are used, as fair-esm uses them
    stored = reference.layers[0].self_attn.rot_emb.inv_freq
    assert torch.equal(bundle.encoder.rotary.inv_freq, stored)
    assert not torch.equal(stored, esm_mod.rotary_inv_freq(DIM // HEADS))

    tokens = fair_tokens(ref_alphabet, PROTEINS)
    real = tokens.ne(alphabet.padding_idx)
    with torch.no_grad():
        ours = bundle.encoder(tokens)
    diff = max_diff(ours[real], fair_final(reference, tokens)[real])
    print(f"checkpoint file: max diff = {diff:.2e}")
    assert diff < FP32_TOL


def test_published_extraction_equals_pooled_embeddings(checkpoint: Path) -> None:
    bundle = load_esm(checkpoint)
    reference, alphabet = load_fair_esm_reference(checkpoint)
    seqs = [*PROTEINS, "MKV" * 12]
    # small token batches (several batches, length-sorted) and a short truncation
    published = embed_proteins_published(
        reference, alphabet, seqs, toks_per_batch=80, truncation_seq_length=30
    )
    ours = bundle.embed(seqs, truncation_seq_length=30)
    assert published.shape == ours.shape == (len(seqs), DIM)
    diff = max_diff(published, ours)
    print(f"published extraction vs pooled: max diff = {diff:.2e}")
    assert diff < FP32_TOL
    # input order is kept: row i is sequence i
    single = bundle.embed([seqs[2]], truncation_seq_length=30)
    assert max_diff(published[2], single[0]) < FP32_TOL


def test_checkpoint_with_other_name_and_demo_marker(tmp_path: Path, fair_model: ESM2) -> None:
    path = save_fair_esm_checkpoint(fair_model, tmp_path / "tiny_demo.pt", regression=False)
    (tmp_path / "demo.json").write_text(json.dumps({"demo": True}))
    (tmp_path / "config.json").write_text("{}")  # an unrelated config.json nearby is ignored
    bundle = load_esm(path)
    assert bundle.demo and bundle.format == "fair-esm"
    assert bundle.encoder.rotary.inv_freq.dtype == torch.float32


def test_low_precision_forward(checkpoint: Path) -> None:
    bundle = load_esm(checkpoint)
    fp32 = bundle.embed(PROTEINS)
    for dtype, tol in ((torch.bfloat16, 0.1), (torch.float16, 0.02)):
        bundle = load_esm(checkpoint).to("cpu", dtype)
        assert bundle.dtype == dtype
        assert bundle.encoder.rotary.inv_freq.dtype == torch.float32
        low = bundle.embed(PROTEINS)
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        diff = max_diff(low, fp32)
        print(f"{dtype}: max pooled diff to fp32 = {diff:.2e}")
        assert diff < tol * fp32.abs().max().item()


def test_loading_in_half_precision_gives_the_same_bits_as_casting_after(checkpoint: Path) -> None:
    """The engine reads ESM-2 straight into its GPU dtype (no fp32 copy): the same weights as
    the fp32 load cast afterwards, the rotary table still fp32."""
    for dtype in (torch.float16, torch.bfloat16):
        direct = load_esm(checkpoint, dtype)
        cast = load_esm(checkpoint).to("cpu", dtype)
        assert direct.dtype == dtype
        assert direct.encoder.rotary.inv_freq.dtype == torch.float32
        a, b = direct.encoder.state_dict(), cast.encoder.state_dict()
        assert list(a) == list(b)
        assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
        assert torch.equal(direct.embed(PROTEINS), cast.embed(PROTEINS))


# --- transformers directories ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_config():
    transformers = pytest.importorskip("transformers")
    return transformers.EsmConfig(
        vocab_size=33,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        pad_token_id=1,
        mask_token_id=32,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
        max_position_embeddings=1026,
    )


@pytest.mark.parametrize("class_name", ["EsmModel", "EsmForMaskedLM"])
def test_transformers_directory_matches_last_hidden_state(
    tmp_path: Path, hf_config, alphabet: Alphabet, class_name: str
) -> None:
    import transformers

    model = randomise(getattr(transformers, class_name)(hf_config), seed=3)
    model.save_pretrained(tmp_path)
    bundle = load_esm(tmp_path)
    assert bundle.format == "transformers" and bundle.source == tmp_path
    assert (bundle.num_layers, bundle.embed_dim) == (2, 64)

    tokens = fair_tokens(alphabet, [*PROTEINS, "MK<mask>V"])
    attention = tokens.ne(alphabet.padding_idx)
    base = model.esm if class_name == "EsmForMaskedLM" else model
    with torch.no_grad():
        expected = base(input_ids=tokens, attention_mask=attention.long()).last_hidden_state
        ours = bundle.encoder(tokens)
    diff = max_diff(ours[attention], expected[attention])
    print(f"{class_name}: max |EsmEncoder - transformers| = {diff:.2e}")
    assert diff < FP32_TOL
    # a file inside the directory resolves to the directory
    assert load_esm(tmp_path / "config.json").source == tmp_path


def test_transformers_bin_with_older_key_names(
    tmp_path: Path, hf_config, alphabet: Alphabet
) -> None:
    """pytorch_model.bin with LayerNorm.weight/bias and per-layer inv_freq, as older saves."""
    import transformers
    from safetensors.torch import load_file

    model = randomise(transformers.EsmModel(hf_config), seed=5)
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    renamed = {}
    for key, value in weights.items():
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias"
        )
        if "*" in key:
            for i in range(hf_config.num_hidden_layers):
                renamed[key.replace("*", str(i))] = value
        else:
            renamed[key] = value
    (tmp_path / "model.safetensors").unlink()
    torch.save(renamed, tmp_path / "pytorch_model.bin")
    bundle = load_esm(tmp_path / "pytorch_model.bin")
    tokens = fair_tokens(alphabet, PROTEINS)
    attention = tokens.ne(alphabet.padding_idx)
    with torch.no_grad():
        expected = model(input_ids=tokens, attention_mask=attention.long()).last_hidden_state
        ours = bundle.encoder(tokens)
    assert max_diff(ours[attention], expected[attention]) < FP32_TOL


def test_transformers_absolute_positions_refused(tmp_path: Path, hf_config) -> None:
    import transformers

    cfg = hf_config.to_dict() | {"position_embedding_type": "absolute"}
    transformers.EsmModel(transformers.EsmConfig(**cfg)).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="unexpected architecture.*position_embedding_type"):
        load_esm(tmp_path)


def test_transformers_wrong_key_set_refused(tmp_path: Path, hf_config) -> None:
    import transformers
    from safetensors.torch import load_file, save_file

    transformers.EsmModel(hf_config).save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights.pop("encoder.layer.1.intermediate.dense.weight")
    weights["encoder.layer.1.adapter.weight"] = torch.zeros(2)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(
        ModelError, match=r"wrong key set.*missing layers\.1\.fc1\.weight.*unexpected"
    ):
        load_esm(tmp_path)


# --- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_esm(tmp_path / "esm2_t36_3B_UR50D.pt")


def test_not_an_esm_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"hidden_layer.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelError, match="not an ESM checkpoint"):
        load_esm(path)
    torch.save({"model": {}, "args": Namespace(arch="roberta_large")}, path)
    with pytest.raises(ModelError, match="ESM-1 checkpoint"):
        load_esm(path)


def test_checkpoint_with_missing_weights(tmp_path: Path, fair_model: ESM2) -> None:
    path = save_fair_esm_checkpoint(fair_model, tmp_path / "esm2_broken.pt", regression=False)
    with torch.serialization.safe_globals([Namespace]):
        data = torch.load(path, weights_only=True)
    del data["model"]["encoder.sentence_encoder.layers.1.fc2.weight"]
    torch.save(data, path)
    with pytest.raises(ModelError, match=r"esm2_broken\.pt: wrong key set for ESM-2 .*fc2"):
        load_esm(path)


def test_truncated_checkpoint(tmp_path: Path, checkpoint: Path) -> None:
    path = tmp_path / "esm2_cut.pt"
    path.write_bytes(checkpoint.read_bytes()[:2000])
    with pytest.raises(ModelError, match="esm2_cut.pt: corrupt or truncated"):
        load_esm(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))  # type: ignore[attr-defined]


def test_code_carrying_checkpoint_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker  # type: ignore[attr-defined]
    path = tmp_path / "esm2_evil.pt"
    torch.save({"model": {}, "cfg": {"model": exploit}}, path)
    with pytest.raises(ModelError, match=r"refused to load: .*code object '(posix|os|nt)\.system'"):
        load_esm(path)
    assert not marker.exists()


def _record_sdpa_masks(monkeypatch: pytest.MonkeyPatch) -> list:
    seen: list = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(kwargs.get("attn_mask"))
        return real(*args, **kwargs)

    monkeypatch.setattr(esm_mod.F, "scaled_dot_product_attention", spy)
    return seen
