"""Model files are data, not code (docs/reliability.md#model-files-are-data-not-code).

Pickles are loaded with ``weights_only=True`` and an allow-list: a file that carries code is
refused before the code can run, on every path that reads one (the classifier in
tests/models/test_classifier.py, the fair-esm checkpoint in tests/models/test_esm.py, the DNABERT-S
weights in tests/models/test_dnabert.py; here the remaining files and the whole command line).
Model checksums are recorded in the manifest and a changed model refuses the resume. Nothing in
the package can run remote code.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_no_live_processes, cli, cli_env, outputs, worker_pids
from virnucpro_tui.cli import main
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.esm import load_esm
from virnucpro_tui.models.safe_load import torch_load_safely

PACKAGE = Path(__file__).resolve().parents[1] / "virnucpro_tui"
INPUT = Path(__file__).resolve().parents[1] / "sample_data" / "sample_reads.fa.gz"
REFUSED = r"refused to load: the file contains code object '(posix|os|nt)\.system' that is not allow-listed"


class Exploit:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


# -- code-carrying files are refused on every loading path --------------------------------------


def esm_hf_config() -> dict:
    return {"model_type": "esm", "num_hidden_layers": 1, "hidden_size": 8, "num_attention_heads": 2,
            "intermediate_size": 16, "position_embedding_type": "rotary", "vocab_size": 33,
            "pad_token_id": 1, "mask_token_id": 32}  # fmt: skip


def test_esm_contact_regression_file_with_code_is_refused(tmp_path: Path, demo_models) -> None:
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "esm2_t2_copy.pt"
    shutil.copy(demo_models.esm, checkpoint)
    regression = tmp_path / "esm2_t2_copy-contact-regression.pt"
    torch.save({"model": {"weight": Exploit(marker)}}, regression)
    with pytest.raises(ModelError, match=REFUSED) as info:
        load_esm(checkpoint)
    assert str(info.value).startswith(str(regression))
    assert not marker.exists()


@pytest.mark.parametrize("layout", ["pytorch_model.bin", "sharded"])
def test_esm_transformers_directory_with_code_is_refused(tmp_path: Path, layout: str) -> None:
    marker = tmp_path / "pwned"
    directory = tmp_path / "esm2_hf"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(esm_hf_config()))
    weights = {"esm.embeddings.word_embeddings.weight": Exploit(marker)}
    if layout == "sharded":
        shard = directory / "pytorch_model-00001-of-00001.bin"
        index = {"weight_map": {"esm.embeddings.word_embeddings.weight": shard.name}}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        shard = directory / "pytorch_model.bin"
    torch.save(weights, shard)
    with pytest.raises(ModelError, match=REFUSED) as info:
        load_esm(directory)
    assert str(info.value).startswith(str(shard))
    assert not marker.exists()


def test_unknown_global_in_an_allow_listed_container_is_refused(tmp_path: Path) -> None:
    """Only the globals named are allowed: a harmless-looking class is refused too."""
    path = tmp_path / "odd.pt"
    torch.save({"cfg": Path("/etc")}, path)
    with pytest.raises(ModelError, match="refused to load: .*pathlib"):
        torch_load_safely(path)


def evil_dnabert(demo_models, tmp_path: Path, marker: Path) -> Path:
    directory = tmp_path / "DNABERT-S-evil"
    shutil.copytree(demo_models.dnabert, directory)
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "extra": Exploit(marker)}, directory / "pytorch_model.bin")
    return directory


def test_a_run_with_a_code_carrying_dnabert_fails_clearly(tmp_path: Path, demo_models) -> None:
    """The worker loads DNABERT-S: it refuses the file, the run stops with one clear line."""
    marker = tmp_path / "pwned"
    dnabert = evil_dnabert(demo_models, tmp_path, marker)
    out = tmp_path / "run"
    r = cli(["run", str(INPUT), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1",
             "--dnabert", str(dnabert)], cli_env(demo_models.root))  # fmt: skip
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "virnucpro-tui: error: worker 0 (CPU worker 0) cannot run: RefusedGlobalError: "
    )
    assert (
        f"{dnabert / 'pytorch_model.bin'}: refused to load" in last and "not allow-listed" in last
    )
    assert not marker.exists()
    assert not (out / "prediction_results.txt").exists()
    assert_no_live_processes(worker_pids(out))


def test_a_run_with_a_code_carrying_classifier_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_models
) -> None:
    marker = tmp_path / "pwned"
    classifier = tmp_path / "500_model.pth"
    torch.save({"hidden_layer.weight": Exploit(marker)}, classifier)
    out = tmp_path / "run"
    code = main(["run", str(INPUT), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1",
                 "--classifier", str(classifier)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"virnucpro-tui: error: {classifier}: refused to load")
    assert not marker.exists() and not out.exists()


# -- model checksums in the manifest, checked on resume ------------------------------------------


@pytest.fixture
def model_copies(tmp_path: Path, demo_models) -> dict[str, Path]:
    """Private copies of the demo models, free to change."""
    root = tmp_path / "models"
    root.mkdir()
    esm = root / "esm2_t2_demo_UR50D.pt"
    shutil.copy(demo_models.esm, esm)
    dnabert = root / "DNABERT-S-demo"
    shutil.copytree(demo_models.dnabert, dnabert)
    return {"esm": esm, "dnabert": dnabert}


def run_with(out: Path, models: dict[str, Path], *extra: str) -> list[str]:
    return ["run", str(INPUT), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1",
            "--esm", str(models["esm"]), "--dnabert", str(models["dnabert"]), *extra]  # fmt: skip


def perturb_esm(path: Path) -> None:
    data = torch_load_safely(path)
    key = next(k for k in data["model"] if k.endswith("layers.0.fc1.weight"))
    data["model"][key] = data["model"][key] * 1.5
    changed = path.with_name(path.name + ".new")
    torch.save(data, changed)  # not over the file itself: the loader memory-maps it
    changed.replace(path)


def test_a_changed_model_refuses_the_resume_and_restart_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_models, model_copies
) -> None:
    out = tmp_path / "run"
    env = cli_env(demo_models.root)
    r = cli(run_with(out, model_copies), env)
    assert r.returncode == 0, r.stderr
    first = outputs(out)
    recorded = json.loads((out / "manifest.json").read_text())["models"]
    assert set(recorded) == {"esm", "dnabert", "classifier"}
    assert all(len(m["sha256"]) == 64 for m in recorded.values())
    assert {"tokenizer.json", "config.json", "pytorch_model.bin"} <= set(
        recorded["dnabert"]["files"]
    )

    manifest = (out / "manifest.json").read_bytes()

    tokenizer = model_copies["dnabert"] / "tokenizer.json"
    original = tokenizer.read_bytes()
    tokenizer.write_bytes(original + b"\n")  # same tokenizer, different bytes: still refused
    assert main(run_with(out, model_copies)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "holds a different run" in err and f"the dnabert model file changed ({tokenizer})" in err
    assert "--restart" in err
    tokenizer.write_bytes(original)

    perturb_esm(model_copies["esm"])
    for _attempt in range(2):  # refused again: the refusal did not adopt the new model
        assert main(run_with(out, model_copies)) == 2
        err = capsys.readouterr().err
        assert f"the esm model file changed ({model_copies['esm']})" in err and "--restart" in err
    assert outputs(out) == first  # the refused runs touched nothing
    assert (out / "manifest.json").read_bytes() == manifest

    r = cli(run_with(out, model_copies, "--restart"), env)
    assert r.returncode == 0, r.stderr
    assert outputs(out) != first  # new weights, new scores
    assert (
        json.loads((out / "manifest.json").read_text())["models"]["esm"]["sha256"]
        != recorded["esm"]["sha256"]
    )


# -- no remote code, anywhere in the package ------------------------------------------------


def package_trees() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), filename=str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return "?"


# loaders that unpickle without an allow-list, or fetch and run code
FORBIDDEN_CALLS = {"from_pretrained", "load_model_and_alphabet", "load_model_and_alphabet_local",
                   "load_model_and_alphabet_hub", "load_state_dict_from_url", "hf_hub_download",
                   "snapshot_download", "import_module"}  # fmt: skip
BUILTINS_THAT_RUN_CODE = {"eval", "exec", "compile", "__import__"}


def forbidden_call(func: ast.AST) -> bool:
    if isinstance(func, ast.Name):
        return func.id in FORBIDDEN_CALLS | BUILTINS_THAT_RUN_CODE
    return isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_CALLS


FORBIDDEN_MODULES = {"transformers", "huggingface_hub", "dill", "cloudpickle", "joblib"}
# The one exception: the downloader asks the hub for a file's metadata (a HEAD request: commit,
# ETag, size, location). It imports only these names; the hub's download functions stay forbidden
# above, and the bytes it fetches are loaded by the safe loaders like any other model file.
HUB_METADATA_ONLY = (
    "models/download.py",
    "huggingface_hub",
    {"get_hf_file_metadata", "hf_hub_url"},
)


def allowed_import(path: Path, node: ast.Import | ast.ImportFrom) -> bool:
    where, module, names = HUB_METADATA_ONLY
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == module
        and path.as_posix().endswith(where)
        and {a.name for a in node.names} <= names
    )


def test_no_remote_code_can_run() -> None:
    found = []
    for path, tree in package_trees():
        assert "trust_remote_code" not in path.read_text(), path
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and forbidden_call(node.func):
                found.append(f"{path}:{node.lineno} calls {dotted(node.func)}")
            if isinstance(node, ast.Import | ast.ImportFrom) and not allowed_import(path, node):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                found += [
                    f"{path}:{node.lineno} imports {n}"
                    for n in names
                    if n.split(".")[0] in FORBIDDEN_MODULES
                ]
    assert not found, found


def test_every_unpickling_is_weights_only() -> None:
    loads, unsafe = [], []
    for path, tree in package_trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = dotted(node.func)
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "torch.hub.load"):
                unsafe.append(f"{path}:{node.lineno} {name}")
            if name == "torch.load":
                loads.append(path.name)
                value = {k.arg: k.value for k in node.keywords}.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    unsafe.append(f"{path}:{node.lineno} torch.load without weights_only=True")
    assert not unsafe, unsafe
    assert "safe_load.py" in loads  # the scan does see the loader
