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
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import (
    assert_no_live_processes,
    cli,
    cli_env,
    events,
    outputs,
    worker_pids,
)
from virnucpro_tui.cli import main
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models.esm import load_esm
from virnucpro_tui.models.preflight import check_model_files
from virnucpro_tui.models.safe_load import torch_load_safely
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.run.orchestrator import Orchestrator, RunConfig
from virnucpro_tui.testing.fake_backend import FakeBackend

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


# -- pre-flight: every bad model file is refused before any worker starts ----------------------


def with_code(path: Path, data: dict, marker: Path, plain_pickle: bool = False) -> Path:
    """``data`` with a code-carrying object under data["model"]["evil"], saved by torch or, as a
    plain pickle, by the pickle module (a file torch.load reads in its legacy format)."""
    data = {**data, "model": {**data.get("model", {}), "evil": Exploit(marker)}}
    if plain_pickle:
        with path.open("wb") as handle:
            pickle.dump(data, handle)
    else:
        torch.save(data, path)
    return path


def truncated(path: Path, source: Path | None = None) -> Path:
    """``path`` holding the first half of ``source`` (default: of itself)."""
    data = (source or path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def as_safetensors(directory: Path, change: dict[str, torch.Tensor] | None = None) -> Path:
    """The directory's weights as model.safetensors (pytorch_model.bin removed), with ``change``."""
    from safetensors.torch import save_file

    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    (directory / "pytorch_model.bin").unlink()
    save_file({**state, **(change or {})}, str(directory / "model.safetensors"))
    return directory / "model.safetensors"


def bad_model(case: str, demo, tmp: Path, marker: Path) -> tuple[str, Path, Path]:
    """(option, path given, file the message must name) for one case of BAD_MODELS."""
    esm = tmp / "esm2_t2_copy.pt"
    shutil.copy(demo.esm, esm)
    if case == "esm checkpoint with code":
        return "--esm", esm, with_code(esm, torch_load_safely(demo.esm), marker)
    if case == "esm checkpoint, a plain pickle with code":
        return "--esm", esm, with_code(esm, torch_load_safely(demo.esm), marker, plain_pickle=True)
    if case == "esm contact-regression file with code":
        return "--esm", esm, with_code(tmp / "esm2_t2_copy-contact-regression.pt", {}, marker)
    if case == "esm checkpoint truncated":
        return "--esm", esm, truncated(esm)
    if case == "esm transformers directory, pytorch_model.bin with code":
        directory = tmp / "esm2_hf"
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(esm_hf_config()))
        return "--esm", directory, with_code(directory / "pytorch_model.bin", {}, marker)
    if case == "dnabert pytorch_model.bin with code":
        directory = evil_dnabert(demo, tmp, marker)
        return "--dnabert", directory, directory / "pytorch_model.bin"
    directory = tmp / "DNABERT-S-copy"
    shutil.copytree(demo.dnabert, directory)
    if case == "dnabert model.safetensors with wrong shapes":
        wrong = {"encoder.layer.0.attention.self.Wqkv.weight": torch.zeros(192, 32)}
        return "--dnabert", directory, as_safetensors(directory, wrong)
    if case == "dnabert model.safetensors truncated":
        return "--dnabert", directory, truncated(as_safetensors(directory))
    if case == "classifier with code":
        return "--classifier", *[with_code(tmp / "500_model.pth", {}, marker)] * 2
    if case == "classifier truncated":
        return "--classifier", *[truncated(tmp / "500_model.pth", demo.classifier_500)] * 2
    if case == "dnabert tokenizer.json missing":
        (directory / "tokenizer.json").unlink()
        return "--dnabert", directory, directory
    raise AssertionError(case)


# The hidden cases of issue 15, and the one line each gets (after "FILE: ").
CODE = REFUSED + r" \(model files are data, not code\)"
BAD_MODELS = {
    "esm checkpoint with code": CODE,
    "esm checkpoint, a plain pickle with code": CODE,
    "esm contact-regression file with code": CODE,
    "esm transformers directory, pytorch_model.bin with code": CODE,
    "esm checkpoint truncated": r"corrupt or truncated model file \(PytorchStreamReader failed "
    r"reading zip archive: failed finding central directory\)",
    "dnabert pytorch_model.bin with code": CODE,
    "dnabert model.safetensors with wrong shapes": r"encoder\.layer\.0\.attention\.self\.Wqkv\."
    r"weight has shape \(192, 32\), DNABERT-S expects \(192, 64\)",
    "dnabert model.safetensors truncated": r"not a readable safetensors file \(.+\)",
    "dnabert tokenizer.json missing": "no tokenizer.json next to the DNABERT-S weights",
    "classifier with code": CODE,
    "classifier truncated": r"corrupt or truncated model file \(incomplete zip archive\)",
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_a_bad_model_file_is_refused_before_any_work(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_models
) -> None:
    """Exit 2, one line naming the file and the problem, nothing run, nothing written, and no
    advice to load the file unsafely."""
    marker = tmp_path / "pwned"
    option, given, named = bad_model(case, demo_models, tmp_path, marker)
    out = tmp_path / "run"
    code = main(["run", str(INPUT), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1",
                 option, str(given)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.fullmatch(
        rf"virnucpro-tui: error: {re.escape(str(named))}: {BAD_MODELS[case]}\n", err
    )
    assert "Traceback" not in err and "weights_only" not in err
    assert not marker.exists() and not out.exists()


@pytest.mark.slow
def test_the_refusal_is_the_only_line_on_stderr(tmp_path: Path, demo_models) -> None:
    """In a real process: torch's own warnings for a plain pickle do not reach the user."""
    marker = tmp_path / "pwned"
    option, given, named = bad_model(
        "esm checkpoint, a plain pickle with code", demo_models, tmp_path, marker
    )
    r = cli(["run", str(INPUT), "--out", str(tmp_path / "run"), "--demo", "--no-ui",
             "--devices", "cpu:1", option, str(given)], cli_env(demo_models.root))  # fmt: skip
    assert r.returncode == 2
    assert re.fullmatch(rf"virnucpro-tui: error: {re.escape(str(named))}: {CODE}\n", r.stderr)
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "case", ["esm contact-regression file with code", "dnabert model.safetensors with wrong shapes"]
)
def test_the_orchestrator_checks_every_model_before_its_pool_starts(
    case: str, tmp_path: Path, demo_models
) -> None:
    """Front ends that skip the command line's check still get it: Orchestrator.execute."""
    marker = tmp_path / "pwned"
    option, given, named = bad_model(case, demo_models, tmp_path, marker)
    models = {"esm": demo_models.esm, "dnabert": demo_models.dnabert}
    models[option.removeprefix("--")] = given
    files = ModelFiles(models["esm"], models["dnabert"], demo_models.classifier_500)
    backend = FakeBackend()
    cfg = RunConfig(inputs=[INPUT], out=tmp_path / "run", models=files, demo=True, devices="cpu:1")
    with pytest.raises(ModelError) as info:
        Orchestrator(cfg, [], backend=backend).execute()
    assert re.fullmatch(rf"{re.escape(str(named))}: {BAD_MODELS[case]}", str(info.value))
    assert not backend.opened and not backend.spawned
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_preflight_reads_no_tensor_data_and_never_initialises_cuda(demo_models) -> None:
    files = ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)
    report = check_model_files(files)
    assert report.esm.format == "fair-esm" and report.esm.files == (
        demo_models.esm,
        demo_models.esm.with_name("esm2_t2_demo_UR50D-contact-regression.pt"),
    )
    assert report.dnabert.format == "pytorch_model.bin"
    assert {p.name for p in report.dnabert.files} == {
        "config.json",
        "tokenizer.json",
        "pytorch_model.bin",
    }
    assert report.classifier.chunk_length == 500 and report.classifier.demo
    assert not torch.cuda.is_initialized()


@pytest.mark.slow
def test_models_that_pass_preflight_but_fail_in_the_worker_end_the_run_honestly(
    tmp_path: Path, demo_models
) -> None:
    """Exit 1; the message does not claim that running the command again will help; once the
    cause is gone, the same command runs the same directory to the end."""
    out = tmp_path / "run"
    command = ["run", str(INPUT), "--out", str(out), "--demo", "--no-ui", "--devices", "cpu:1"]
    r = cli(command, cli_env(demo_models.root, {"fail_load": True}))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == (
        "virnucpro-tui: error: worker 0 (CPU worker 0) could not load the models (RuntimeError: "
        "model loading failed (injected fault)); see logs/worker-0.log: running the same command "
        "again will fail the same way until that is fixed"
    )
    assert not any("rerun" in line or "resumable" in line for line in lines), lines
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["resumable"] is False
    (done,) = [e for e in events(out) if e["type"] == "run_done"]
    assert done["exit_code"] == 1 and done["resumable"] is False
    assert "model loading failed (injected fault)" in (out / "logs" / "worker-0.log").read_text()
    assert not (out / "prediction_results.txt").exists()
    assert_no_live_processes(worker_pids(out))

    r = cli(command, cli_env(demo_models.root))
    assert r.returncode == 0, r.stderr
    assert (out / "prediction_results.txt").is_file()


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


@pytest.mark.slow
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
