"""The classifier loader: the published pickle (class __main__.MLPClassifier), state dicts,
safetensors, refusal of code-carrying pickles, chunk-length checks, probabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.classifier import (
    MLPClassifier,
    check_chunk_length,
    length_from_name,
    load_classifier,
    predict_proba,
)
from virnucpro_tui.models.demo import PUBLISHED_MLP_CLASS
from virnucpro_tui.models.identity import HashCache, model_identity
from virnucpro_tui.models.safe_load import torch_load_safely

IN, HIDDEN = 48, 16

# Written the way the published train.py does: a top-level class in the script, torch.save(model).
PUBLISHED_SCRIPT = (
    textwrap.dedent(
        """
    import sys
    import torch
    from torch import nn
    import torch.nn.functional as F
    """
    )
    + PUBLISHED_MLP_CLASS
    + textwrap.dedent(
        """
    out, old_style = sys.argv[1], sys.argv[2] == "old"
    torch.manual_seed(7)
    model = MLPClassifier({IN}, {HIDDEN}, 2)
    with torch.no_grad():
        model.bn1.running_mean.normal_()
        model.bn1.running_var.uniform_(0.5, 2.0)
        model.bn1.weight.normal_(1.0, 0.2)
        model.bn1.bias.normal_()
        model.bn1.num_batches_tracked.fill_(123)
    if old_style:  # what an older torch leaves: some private attributes missing, others extra
        for name in ("_forward_hooks_with_kwargs", "_state_dict_pre_hooks", "_load_state_dict_post_hooks"):
            model.__dict__.pop(name, None)
            model.bn1.__dict__.pop(name, None)
        model._backend_leftover = None
        model.bn1._version_note = 3
    model.eval()
    torch.save(model, out)
    x = torch.randn(64, {IN}, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    torch.save({{"x": x, "probs": probs}}, out + ".expected")
    """
    ).format(IN=IN, HIDDEN=HIDDEN)
)


def write_published(path: Path, old_style: bool = False) -> dict[str, torch.Tensor]:
    subprocess.run(
        [sys.executable, "-c", PUBLISHED_SCRIPT, str(path), "old" if old_style else "new"],
        check=True,
        cwd=path.parent,
    )
    return torch.load(f"{path}.expected", weights_only=True)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("clf") / "300_model.pth"
    return path, write_published(path)


def random_model(seed: int = 0) -> MLPClassifier:
    torch.manual_seed(seed)
    model = MLPClassifier(IN, HIDDEN, 2)
    with torch.no_grad():
        model.bn1.running_mean.normal_()
        model.bn1.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.slow
def test_published_pickle_is_main_class(published: tuple[Path, dict]) -> None:
    path, _ = published
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    assert "__main__.MLPClassifier" in unsafe
    assert "torch.nn.modules.linear.Linear" in unsafe


def test_published_pickle_loads_and_matches(published: tuple[Path, dict]) -> None:
    path, expected = published
    bundle = load_classifier(path)
    assert bundle.format == "pickle" and bundle.input_dim == IN
    assert bundle.chunk_length == 300 and not bundle.demo
    assert bundle.source == path
    identity = model_identity(path, HashCache(path.with_suffix(".hashes")))
    assert identity == {"path": str(path), "sha256": sha256_file(path)}
    assert not bundle.model.training
    probs = predict_proba(bundle, expected["x"])
    assert probs.dtype == torch.float32 and probs.shape == (64, 2)
    assert torch.allclose(probs, expected["probs"], atol=1e-6, rtol=0)
    assert torch.allclose(probs.sum(1), torch.ones(64))
    assert bundle.model.bn1.num_batches_tracked.item() == 123


@pytest.mark.slow
def test_pickle_from_older_torch(tmp_path: Path) -> None:
    path = tmp_path / "500_model.pth"
    expected = write_published(path, old_style=True)
    bundle = load_classifier(path)
    assert bundle.chunk_length == 500
    assert torch.allclose(predict_proba(bundle, expected["x"]), expected["probs"], atol=1e-6)


def test_eval_mode_is_kept(published: tuple[Path, dict]) -> None:
    path, expected = published
    bundle = load_classifier(path)
    bundle.model.train()  # dropout must stay off: repeated calls give the same answer
    first = predict_proba(bundle, expected["x"])
    assert not bundle.model.training
    assert torch.equal(first, predict_proba(bundle, expected["x"]))


def test_state_dict_round_trips(tmp_path: Path) -> None:
    model = random_model()
    x = torch.randn(10, IN)
    with torch.no_grad():
        want = torch.softmax(model(x), dim=1)
    plain, wrapped, ddp = tmp_path / "plain.pt", tmp_path / "500_wrapped.pth", tmp_path / "ddp.pt"
    torch.save(model.state_dict(), plain)
    torch.save({"model_state_dict": model.state_dict(), "epoch": 3}, wrapped)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ddp)
    for path in (plain, wrapped, ddp):
        bundle = load_classifier(path)
        assert bundle.format == "state_dict"
        assert torch.allclose(predict_proba(bundle, x), want, atol=1e-6, rtol=0)
    assert load_classifier(plain).chunk_length is None
    assert load_classifier(wrapped).chunk_length == 500


def test_safetensors_round_trip_with_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = random_model(1)
    x = torch.randn(5, IN)
    with torch.no_grad():
        want = torch.softmax(model(x), dim=1)
    path = tmp_path / "classifier.safetensors"
    save_file(model.state_dict(), str(path), metadata={"chunk_length": "500", "demo": "true"})
    bundle = load_classifier(path)
    assert (bundle.format, bundle.chunk_length, bundle.demo) == ("safetensors", 500, True)
    assert torch.allclose(predict_proba(bundle, x), want, atol=1e-6, rtol=0)


def test_demo_marker_next_to_file(tmp_path: Path) -> None:
    path = tmp_path / "300_model.pth"
    torch.save(random_model().state_dict(), path)
    assert not load_classifier(path).demo
    (tmp_path / "demo.json").write_text(json.dumps({"demo": True}))
    assert load_classifier(path).demo


def _evil_pickle(path: Path, marker: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, torch
        class MLPClassifier:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        torch.save(MLPClassifier(), "{path}")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)


@pytest.mark.slow
def test_malicious_pickle_refused_and_never_runs(tmp_path: Path) -> None:
    path, marker = tmp_path / "300_model.pth", tmp_path / "pwned"
    _evil_pickle(path, marker)
    assert not marker.exists()
    with pytest.raises(ModelError) as info:
        load_classifier(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to load: the file contains code object '")
    assert "system' that is not allow-listed (model files are data, not code)" in message
    assert not marker.exists()


def test_plain_pickle_exploit_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "state.pt"
    torch.save({"hidden_layer.weight": Exploit()}, path)
    with pytest.raises(ModelError, match="refused to load"):
        load_classifier(path)
    with pytest.raises(ModelError, match="refused to load"):
        torch_load_safely(path)
    assert not marker.exists()


def test_corrupt_and_foreign_files(tmp_path: Path, published: tuple[Path, dict]) -> None:
    cut = tmp_path / "300_model.pth"
    cut.write_bytes(published[0].read_bytes()[:500])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_classifier(cut)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(ModelError, match="not a VirNucPro classifier"):
        load_classifier(other)
    with pytest.raises(ModelError, match="not found"):
        load_classifier(tmp_path / "missing.pth")
    three = MLPClassifier(IN, HIDDEN, 3)
    torch.save(three.state_dict(), tmp_path / "three.pt")
    with pytest.raises(ModelError, match="3 classes"):
        load_classifier(tmp_path / "three.pt")


def test_length_inference_and_mismatch(published: tuple[Path, dict], tmp_path: Path) -> None:
    assert length_from_name("300_model.pth") == 300
    assert length_from_name("/x/500_model.pth") == 500
    assert length_from_name("3000_model.pth") is None
    assert length_from_name("model_300.pth") is None
    bundle = load_classifier(published[0])
    assert check_chunk_length(bundle, 300) is None
    with pytest.raises(ModelError) as info:
        check_chunk_length(bundle, 500)
    assert str(info.value) == (
        f"{published[0]}: the classifier was trained for 300-bp chunks but --length is 500; "
        "use the matching model or --force-model-length"
    )
    warning = check_chunk_length(bundle, 500, force=True)
    assert warning is not None and "--force-model-length" in warning
    unknown = tmp_path / "model.pt"
    torch.save(random_model().state_dict(), unknown)
    note = check_chunk_length(load_classifier(unknown), 500)
    assert note is not None and "unknown" in note


def test_predict_proba_checks_width(published: tuple[Path, dict]) -> None:
    bundle = load_classifier(published[0])
    with pytest.raises(ModelError, match=f"expects {IN} features"):
        predict_proba(bundle, torch.zeros(2, IN + 1))
    probs = predict_proba(bundle, torch.zeros(1, IN, dtype=torch.bfloat16))
    assert probs.dtype == torch.float32 and probs.shape == (1, 2)
