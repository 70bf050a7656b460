"""Modules built without random initialisation, state checks, and the model identity cache."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from esm.data import Alphabet
from esm.model.esm2 import ESM2
from torch import nn

from virnucpro_tui.core.checksums import sha256_file
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.esm import EncoderShape
from virnucpro_tui.models.esm.fair import fair_esm_shapes
from virnucpro_tui.models.identity import HashCache, model_identity
from virnucpro_tui.models.weights import SkipWeightInit, build_uninitialised, check_state


def test_skip_weight_init_is_scoped_to_its_thread_and_block() -> None:
    torch.manual_seed(0)
    expected = nn.Linear(64, 64).weight.detach().clone()
    inside: list[torch.Tensor] = []
    other: list[torch.Tensor] = []

    def build_elsewhere() -> None:
        torch.manual_seed(0)
        other.append(nn.Linear(64, 64).weight.detach().clone())

    with SkipWeightInit():
        inside.append(nn.LayerNorm(8, device="meta").weight)
        thread = threading.Thread(target=build_elsewhere)
        thread.start()
        thread.join()
        skipped = nn.Linear(4, 4, bias=False)
        skipped.weight.data.fill_(7.0)  # a fill inside the block is skipped too
    assert torch.equal(other[0], expected)  # another thread initialises normally
    assert inside[0].is_meta
    assert not torch.equal(skipped.weight, torch.full((4, 4), 7.0))
    torch.manual_seed(0)
    assert torch.equal(nn.Linear(64, 64).weight, expected)  # and so does this one, afterwards


@pytest.mark.slow
def test_uninitialised_3b_encoder_costs_no_memory_and_no_decomposition_imports() -> None:
    """The meta build of the real 3B shapes, in a fresh process: no tensor storage, and none of
    the ~800 modules that initialising on the meta device would import (about a second)."""
    script = (
        "import sys, time, torch\n"
        "from virnucpro_tui.models.esm import EncoderShape\n"
        "from virnucpro_tui.models.esm.encoder import uninitialised_encoder\n"
        "before = set(sys.modules)\n"
        "start = time.perf_counter()\n"
        "encoder = uninitialised_encoder(EncoderShape(36, 2560, 40, 10240))\n"
        "seconds = time.perf_counter() - start\n"
        "params = list(encoder.parameters())\n"
        "print(len(set(sys.modules) - before), sum(p.numel() for p in params),\n"
        "      all(p.is_meta for p in params), encoder.rotary.inv_freq.device, seconds)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    new_modules, numel, all_meta, rotary_device, seconds = out.stdout.split()
    assert int(new_modules) < 10
    d, ffn = 2560, 10240
    per_layer = 4 * (d * d + d) + 4 * d + (d * ffn + ffn) + (ffn * d + d)
    assert int(numel) == 36 * per_layer + 33 * d + 2 * d  # esm2_t36_3B without its heads
    assert all_meta == "True" and rotary_device == "cpu"
    assert float(seconds) < 2.0


def test_fair_esm_shapes_are_fair_esm_s_own() -> None:
    model = ESM2(3, 96, 4, Alphabet.from_architecture("ESM-1b"), token_dropout=True)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shape = EncoderShape(3, 96, 4, ffn_dim=4 * 96)
    assert fair_esm_shapes(shape, contact_head=True) == expected
    without = {k: v for k, v in expected.items() if not k.startswith("contact_head.")}
    assert fair_esm_shapes(shape) == without


def test_uninitialised_module_takes_real_weights_by_assignment() -> None:
    torch.manual_seed(1)
    reference = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Embedding(5, 3))
    built = build_uninitialised(
        lambda: nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Embedding(5, 3))
    )
    state = reference.state_dict()
    built.load_state_dict(state, strict=True, assign=True)
    assert all(torch.equal(built.state_dict()[k], v) for k, v in state.items())
    assert built[0].weight.data_ptr() == state["0.weight"].data_ptr()  # assigned, not copied


def test_check_state_names_file_and_first_problem(tmp_path: Path) -> None:
    expected = {"a.weight": (2, 3), "b.weight": (4,)}
    check_state({"a.weight": (2, 3), "b.weight": (4,)}, expected, tmp_path / "w.bin", "X")
    with pytest.raises(
        ModelError, match=r"w\.bin: wrong key set for X \(missing b\.weight; unexpected c\)$"
    ):
        check_state({"a.weight": (2, 3), "c": (1,)}, expected, tmp_path / "w.bin", "X")
    with pytest.raises(
        ModelError, match=r"w\.bin: a\.weight has shape \(3, 2\), X expects \(2, 3\)$"
    ):
        check_state({"a.weight": (3, 2), "b.weight": (4,)}, expected, tmp_path / "w.bin", "X")


# --- model identity ------------------------------------------------------------------------


def test_identity_hashes_once_then_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "esm2_t2_x.pt"
    model.write_bytes(b"weights" * 1000)
    cache_path = tmp_path / "cache" / "hashes.json"
    calls: list[str] = []
    real = sha256_file

    def counting(path: str) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr("virnucpro_tui.models.identity.sha256_file", counting)
    cache = HashCache(cache_path)
    assert model_identity(model, cache) == {"path": str(model), "sha256": real(model)}
    cache.save()
    again = HashCache(cache_path)
    assert model_identity(model, again)["sha256"] == real(model)
    assert len(calls) == 1  # the second run start read the cache
    entry = json.loads(cache_path.read_text())[str(model.resolve())]
    assert entry["sha256"] == real(model) and len(entry["stat"]) == 4

    model.write_bytes(b"WEIGHTS" * 1000)  # same size, new content: the stat key changes
    assert model_identity(model, HashCache(cache_path))["sha256"] == real(model)
    assert len(calls) == 2


def test_identity_of_a_directory_and_a_hub_cache_repo(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--org--DNABERT-S" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    for name, data in (("pytorch_model.bin", b"w"), ("config.json", b"{}"), ("notes.md", b"x")):
        (snapshot / name).write_bytes(data)
    (tmp_path / "models--org--DNABERT-S" / "refs").mkdir()
    (tmp_path / "models--org--DNABERT-S" / "refs" / "main").write_text("abc")
    cache = HashCache(tmp_path / "hashes.json")
    direct = model_identity(snapshot, cache)
    assert direct["sha256"] == sha256_file(snapshot / "pytorch_model.bin")
    assert set(direct["files"]) == {"pytorch_model.bin", "config.json"}
    via_repo = model_identity(tmp_path / "models--org--DNABERT-S", cache)
    assert via_repo["files"] == direct["files"] and via_repo["sha256"] == direct["sha256"]
    assert model_identity(tmp_path / "missing.pt", cache)["sha256"] == "missing"


def test_an_unwritable_cache_is_skipped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    cache = HashCache(blocker / "sub" / "hashes.json")  # its directory cannot be made
    assert model_identity(model, cache)["sha256"] == sha256_file(model)
    cache.save()  # no error
    assert not (blocker / "sub").exists()
