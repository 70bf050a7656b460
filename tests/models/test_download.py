"""``models download`` against real local HTTP servers: a plain mirror (ESM-2, the classifiers)
and a Hugging Face hub endpoint (DNABERT-S). No test touches the internet."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.http_server import LocalServer, Resource, serving
from tests.models.test_locate import clean_home
from virnucpro_tui.cli import main
from virnucpro_tui.errors import ModelError
from virnucpro_tui.models import download, transfer
from virnucpro_tui.models.download import (
    DNABERT_REVISION,
    VIRNUCPRO_COMMIT,
    fair_esm_urls,
)
from virnucpro_tui.models.locate import resolve_model_paths

ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t36_3B_UR50D.pt"
REGRESSION_URL = (
    "https://dl.fbaipublicfiles.com/fair-esm/regression/esm2_t36_3B_UR50D-contact-regression.pt"
)
HUB_REPO_DIR = "models--zhihan1996--DNABERT-S"
HUB_LFS = {"pytorch_model.bin"}


def git_blob_id(body: bytes) -> str:
    return hashlib.sha1(f"blob {len(body)}\0".encode() + body).hexdigest()


@dataclass
class Published:
    """The published files (demo models under the real names) and the servers holding them."""

    files: dict[str, bytes]  # file name -> bytes
    mirror: LocalServer
    hub: LocalServer

    def mirror_path(self, name: str) -> str:
        for url in (ESM_URL, REGRESSION_URL):
            if url.endswith("/" + name):
                return "/" + url.split("://", 1)[1]
        return f"/github.com/Li-Jing-1997/VirNucPro/raw/{VIRNUCPRO_COMMIT}/{name}"

    def cdn_path(self, name: str) -> str:
        return f"/cdn/{hashlib.sha256(self.files[name]).hexdigest()}"


@pytest.fixture(scope="module")
def published_files(demo_models) -> dict[str, bytes]:
    dnabert = demo_models.dnabert
    return {
        "esm2_t36_3B_UR50D.pt": demo_models.esm.read_bytes(),
        "esm2_t36_3B_UR50D-contact-regression.pt": demo_models.esm.with_name(
            f"{demo_models.esm.stem}-contact-regression.pt"
        ).read_bytes(),
        "300_model.pth": demo_models.classifier_300.read_bytes(),
        "500_model.pth": demo_models.classifier_500.read_bytes(),
        **{n: (dnabert / n).read_bytes() for n in download.DNABERT_FILES},
    }


@pytest.fixture
def published(
    published_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Published]:
    """The servers; the classifiers' expected git blob ids point at the demo classifiers."""
    for name in download.CLASSIFIER_BLOB_IDS:
        monkeypatch.setitem(download.CLASSIFIER_BLOB_IDS, name, git_blob_id(published_files[name]))
    with serving() as mirror, serving() as hub:
        pub = Published(published_files, mirror, hub)
        for name in ("esm2_t36_3B_UR50D.pt", "esm2_t36_3B_UR50D-contact-regression.pt"):
            mirror.add(pub.mirror_path(name), published_files[name])
        for name in ("300_model.pth", "500_model.pth"):
            mirror.add(pub.mirror_path(name), published_files[name])
        for name in download.DNABERT_FILES:
            body = published_files[name]
            resolve = f"/zhihan1996/DNABERT-S/resolve/{DNABERT_REVISION}/{name}"
            if name in HUB_LFS:  # LFS: a redirect to the CDN, the sha256 as the linked ETag
                sha = hashlib.sha256(body).hexdigest()
                mirror.add(pub.cdn_path(name), body)
                hub.resources[resolve] = hub.resources.get(resolve) or _redirect(
                    f"{mirror.url}{pub.cdn_path(name)}", sha, len(body)
                )
            else:  # a small file: served by the hub itself, its git blob id as the ETag
                hub.add(
                    resolve,
                    body,
                    ETag=f'"{git_blob_id(body)}"',
                    **{"X-Repo-Commit": DNABERT_REVISION},
                )
        yield pub


def _redirect(location: str, sha: str, size: int) -> Resource:
    return Resource(
        redirect=location,
        headers={
            "X-Repo-Commit": DNABERT_REVISION,
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(size),
        },
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published: Published) -> Path:
    """A clean HOME and working directory (as for `models locate`), pointed at the local servers."""
    home = clean_home(tmp_path, monkeypatch)
    for var in ("HF_HUB_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", published.hub.url)
    monkeypatch.setenv(download.MIRROR_ENV, published.mirror.url)
    monkeypatch.setattr(download, "RETRY_DELAY_S", 0.01)
    return home


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["models", "download", *args])
    out, err = capsys.readouterr()
    return code, out, err


def fails_cut_off(
    published: Published, capsys: pytest.CaptureFixture[str], path: str, after: int, what: str
) -> str:
    """Download ``what`` while the mirror closes ``path`` after ``after`` bytes, then on every
    retry: the command gives up with exit status 1. Its stderr."""
    published.mirror.drops[path] = [after, 0, 0, 0]
    code, _out, err = run_cli(capsys, what)
    assert code == 1
    return err


def cache_paths(home: Path) -> dict[str, Path]:
    snapshot = home / ".cache/huggingface/hub" / HUB_REPO_DIR / "snapshots" / DNABERT_REVISION
    return {
        "esm": home / ".cache/torch/hub/checkpoints/esm2_t36_3B_UR50D.pt",
        "regression": home / ".cache/torch/hub/checkpoints/esm2_t36_3B_UR50D-contact-regression.pt",
        "dnabert": snapshot,
        "300": home / ".cache/virnucpro-tui/300_model.pth",
        "500": home / ".cache/virnucpro-tui/500_model.pth",
        "manifest": home / ".cache/virnucpro-tui/virnucpro-models.json",
    }


def rich_size(n: int) -> str:
    """Rich's DownloadColumn text for a finished transfer of ``n`` bytes."""
    if n < 1000:
        return f"{n}/{n} bytes"
    unit, scale = ("kB", 1e3) if n < 1e6 else ("MB", 1e6)
    return f"{n / scale:,.1f}/{n / scale:,.1f} {unit}"


def leftovers(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith((".partial", ".lock")))


# --- sources -------------------------------------------------------------------------------------


def test_esm_urls_come_from_fair_esm() -> None:
    assert fair_esm_urls() == (ESM_URL, REGRESSION_URL)
    import esm.pretrained
    import torch.hub

    # fair-esm and torch.hub are restored afterwards
    assert esm.pretrained.load_hub_workaround.__name__ == "load_hub_workaround"
    assert esm.pretrained.load_model_and_alphabet_core.__name__ == "load_model_and_alphabet_core"
    assert torch.hub.load_state_dict_from_url.__name__ == "load_state_dict_from_url"


def test_mirror_keeps_host_and_path() -> None:
    assert download.mirrored(ESM_URL, "http://m:1/") == (
        "http://m:1/dl.fbaipublicfiles.com/fair-esm/models/esm2_t36_3B_UR50D.pt"
    )
    assert download.mirrored(ESM_URL, None) == ESM_URL


# --- the whole download --------------------------------------------------------------------------


def test_download_all_three_models(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys)
    assert code == 0, err
    paths = cache_paths(home)
    # the progress bars: every file, with its size
    for name, body in published.files.items():
        line = next(line for line in err.splitlines() if line.startswith(name + " "))
        assert rich_size(len(body)) in line, line
    for name in published.files:
        assert f"{name} " in out and "downloaded" in out.split(name, 1)[1].splitlines()[0]
    # in the caches `models locate` searches, loadable by the real loaders
    found = resolve_model_paths(500)
    assert (found.esm, found.dnabert, found.classifier) == (
        paths["esm"],
        paths["dnabert"],
        paths["500"],
    )
    assert paths["regression"].read_bytes() == published.files[paths["regression"].name]
    assert resolve_model_paths(300).classifier == paths["300"]
    _load_all(found.esm, found.dnabert, found.classifier, paths["300"])
    # the hub's own cache layout: snapshot entries link to blobs named by their ETag
    for name in download.DNABERT_FILES:
        entry = paths["dnabert"] / name
        body = published.files[name]
        etag = hashlib.sha256(body).hexdigest() if name in HUB_LFS else git_blob_id(body)
        assert entry.is_symlink() and entry.resolve().name == etag
        assert entry.read_bytes() == body
    # the manifest records every file's sha256
    manifest = json.loads(paths["manifest"].read_text())["files"]
    assert (
        manifest[str(paths["esm"])]["sha256"]
        == hashlib.sha256(published.files["esm2_t36_3B_UR50D.pt"]).hexdigest()
    )
    assert manifest["300_model.pth"]["verified_by"] == classifier_source("300_model.pth")
    assert manifest[str(paths["esm"])]["verified_by"] == "recorded"
    assert "the hub's ETag" in manifest[str(paths["dnabert"] / "pytorch_model.bin")]["verified_by"]
    assert leftovers(home) == []

    # a second run verifies what is there and touches no network
    before = len(published.mirror.requests) + len(published.hub.requests)
    code, out, err = run_cli(capsys)
    assert code == 0, err
    assert len(published.mirror.requests) + len(published.hub.requests) == before
    assert out.count(" present ") == len(published.files)
    assert "verified against" in out.split("300_model.pth", 1)[1].splitlines()[0]


def _load_all(esm: Path, dnabert: Path, classifier_500: Path, classifier_300: Path) -> None:
    from virnucpro_tui.models.classifier import load_classifier
    from virnucpro_tui.models.dnabert import load_dnabert
    from virnucpro_tui.models.esm import load_esm

    assert load_esm(esm).num_layers == 2
    assert load_dnabert(dnabert).hidden_size == 64
    for path in (classifier_500, classifier_300):
        assert load_classifier(path).model is not None


def test_download_to_dest_writes_configs(
    home: Path, tmp_path: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "models"
    code, out, err = run_cli(capsys, "--dest", str(dest))
    assert code == 0, err
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [
            "300_model.pth",
            "500_model.pth",
            "DNABERT-S",
            "esm2_t36_3B_UR50D-contact-regression.pt",
            "esm2_t36_3B_UR50D.pt",
            "models.toml",
            "virnucpro-models.json",
        ]
    )
    user_config = home / ".config/virnucpro-tui/models.toml"
    assert user_config.read_text() == (dest / "models.toml").read_text()
    assert f"model paths written to {user_config}" in out
    found = resolve_model_paths(300)
    assert (found.esm, found.dnabert, found.classifier) == (
        dest / "esm2_t36_3B_UR50D.pt",
        dest / "DNABERT-S",
        dest / "300_model.pth",
    )
    _load_all(found.esm, found.dnabert, dest / "500_model.pth", found.classifier)
    # a config the user wrote is left alone; the output says how to use ours
    user_config.write_text('esm = "/elsewhere/esm.pt"\n')
    code, out, err = run_cli(capsys, "--dest", str(dest), "classifier")
    assert code == 0, err
    assert user_config.read_text() == 'esm = "/elsewhere/esm.pt"\n'
    assert f"run with --config {dest / 'models.toml'}" in out


@pytest.mark.parametrize("umask", [0o022, 0o027], indirect=True, ids=["umask-022", "umask-027"])
def test_downloaded_files_get_the_umask_mode(
    umask: int,
    home: Path,
    tmp_path: Path,
    published: Published,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every file and directory written (the models, the manifest, models.toml, the hub cache)
    has the mode a plain open() or mkdir() gives under the umask (docs/outputs.md#file-modes)."""
    from tests.test_file_modes import expected, modes

    assert run_cli(capsys)[0] == 0
    dest = tmp_path / "models"
    assert run_cli(capsys, "--dest", str(dest))[0] == 0
    for root in (home, dest):
        found = modes(root)
        assert found == expected(root, umask)
    cache = modes(home)
    for name in ("300_model.pth", "virnucpro-models.json"):
        assert cache[f".cache/virnucpro-tui/{name}"] == oct(0o666 & ~umask)
    assert modes(dest)["models.toml"] == oct(0o666 & ~umask)
    assert len(cache) > 15


# --- interruptions ------------------------------------------------------------------------------


def test_connection_drop_is_resumed_within_the_run(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    path = published.mirror_path("esm2_t36_3B_UR50D.pt")
    body = published.files["esm2_t36_3B_UR50D.pt"]
    published.mirror.drops[path] = [40_000]
    code, _out, err = run_cli(capsys, "esm")
    assert code == 0, err
    ranges = [r.headers.get("Range") for r in published.mirror.gets(path)]
    assert ranges == [None, "bytes=40000-"]
    assert cache_paths(home)["esm"].read_bytes() == body


def test_interrupted_download_resumes_on_the_next_run(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    path = published.mirror_path("esm2_t36_3B_UR50D.pt")
    body = published.files["esm2_t36_3B_UR50D.pt"]
    err = fails_cut_off(published, capsys, path, 30_000, "esm")  # gives up after 4 tries
    message = err.strip().splitlines()[-1]
    partial = cache_paths(home)["esm"].with_name(".esm2_t36_3B_UR50D.pt.partial")
    assert message == (
        "virnucpro-tui: error: esm2_t36_3B_UR50D.pt: network error downloading "
        f"{published.mirror.url}{path}: connection closed after 30,000 of {len(body):,} bytes; "
        f"30.0 kB kept in {partial}, rerun the same command to resume"
    )
    assert partial.read_bytes() == body[:30_000]
    assert not cache_paths(home)["esm"].exists()
    with pytest.raises(ModelError, match="model files not found: ESM-2 3B"):
        resolve_model_paths(500)

    code, out, err = run_cli(capsys, "esm")
    assert code == 0, err
    assert published.mirror.gets(path)[-1].headers.get("Range") == "bytes=30000-"
    assert published.mirror.gets(path)[-1].headers.get("If-Range", "").startswith('"')
    assert cache_paths(home)["esm"].read_bytes() == body
    assert "esm2_t36_3B_UR50D.pt" in out and " resumed " in out
    assert leftovers(home) == []


def test_hub_file_resumes_though_its_signed_cdn_url_changed(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    cdn = published.cdn_path("pytorch_model.bin")
    fails_cut_off(published, capsys, cdn, 100_000, "dnabert")
    resolve = f"/zhihan1996/DNABERT-S/resolve/{DNABERT_REVISION}/pytorch_model.bin"
    published.hub.resources[resolve].redirect += "?X-Amz-Signature=another"
    code, out, err = run_cli(capsys, "dnabert")
    assert code == 0, err
    assert published.mirror.gets(cdn)[-1].headers.get("Range") == "bytes=100000-"
    body = published.files["pytorch_model.bin"]
    assert (cache_paths(home)["dnabert"] / "pytorch_model.bin").read_bytes() == body
    assert " resumed " in out.split("pytorch_model.bin", 1)[1].splitlines()[0]


def test_changed_remote_file_restarts_the_partial(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    path = published.mirror_path("500_model.pth")
    old = published.files["500_model.pth"]
    fails_cut_off(published, capsys, path, 1_000, "classifier")
    new = old[::-1]
    published.mirror.add(path, new)  # another ETag: If-Range makes the server send it all
    download.CLASSIFIER_BLOB_IDS["500_model.pth"] = git_blob_id(new)  # (monkeypatched table)
    code, _out, err = run_cli(capsys, "classifier")
    assert code == 0, err
    last = published.mirror.gets(path)[-1]
    assert last.headers.get("Range") == "bytes=1000-"
    assert cache_paths(home)["500"].read_bytes() == new


def test_server_without_range_support(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    path = published.mirror_path("300_model.pth")
    published.mirror.ranges = False
    published.mirror.drops[path] = [2_000]
    code, _out, err = run_cli(capsys, "classifier")
    assert code == 0, err
    assert cache_paths(home)["300"].read_bytes() == published.files["300_model.pth"]


# --- checksums -----------------------------------------------------------------------------------


def test_corrupted_hub_file_is_refused(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    published.mirror.corrupt.add(published.cdn_path("pytorch_model.bin"))
    code, _out, err = run_cli(capsys, "dnabert")
    assert code == 1
    sha = hashlib.sha256(published.files["pytorch_model.bin"]).hexdigest()
    line = err.strip().splitlines()[-1]
    assert line.startswith("virnucpro-tui: error: pytorch_model.bin: checksum mismatch: sha256 ")
    assert line.endswith(
        f"but the hub's ETag says {sha}; the download was discarded and nothing was placed"
    )
    snapshot = cache_paths(home)["dnabert"]
    assert not (snapshot / "pytorch_model.bin").exists()
    assert not list((home / ".cache/huggingface/hub" / HUB_REPO_DIR / "blobs").glob(sha + "*"))
    assert leftovers(home) == []


def test_corrupted_file_refused_against_the_manifest(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    """ESM-2 has no published checksum: the sha256 of its first download is the reference."""
    name = "esm2_t36_3B_UR50D-contact-regression.pt"
    assert run_cli(capsys, "esm")[0] == 0
    target = cache_paths(home)["regression"]
    target.unlink()
    published.mirror.corrupt.add(published.mirror_path(name))
    code, _out, err = run_cli(capsys, "esm")
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert f"{name}: checksum mismatch: sha256 " in line
    manifest = cache_paths(home)["manifest"]
    assert f"but the sha256 recorded at its first download (in {manifest}) says" in line
    assert not target.exists() and leftovers(home) == []

    # a placed file that changed afterwards is named, not silently replaced
    published.mirror.corrupt.clear()
    assert run_cli(capsys, "esm")[0] == 0
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    code, _out, err = run_cli(capsys, "esm")
    assert code == 1
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("delete it and rerun `virnucpro-tui models download` to fetch it again")
    )
    assert f"error: {target}: checksum mismatch" in err


# the classifiers' git blob ids at the pinned commit, as `git ls-tree 0b7e6f1f` lists them
PINNED_BLOB_IDS = {
    "300_model.pth": "a0b5b85e7c1e44f00cde146d091beb82b2c8e855",
    "500_model.pth": "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d",
}


def test_pinned_classifier_blob_ids() -> None:
    assert VIRNUCPRO_COMMIT == "0b7e6f1f1c5972ce30aa1ced5977890406d3efe2"
    assert download.CLASSIFIER_BLOB_IDS == PINNED_BLOB_IDS
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    assert transfer.file_digests(Path("/dev/null"), "empty").git_sha1 == git_blob_id(b"")


def classifier_source(name: str) -> str:
    return f"the git blob id of {name} in Li-Jing-1997/VirNucPro at commit {VIRNUCPRO_COMMIT[:12]}"


def test_classifier_verified_by_its_git_blob_id(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    """The right bytes pass; another file at the URL (here a real, loadable classifier: the
    300 model served as the 500 one) is refused with one line and nothing is placed."""
    right = published.files["500_model.pth"]
    wrong = published.files["300_model.pth"]
    published.mirror.add(published.mirror_path("500_model.pth"), wrong)
    code, out, err = run_cli(capsys, "classifier")
    assert code == 1
    message = [line for line in err.splitlines() if "error:" in line]
    assert message == [
        "virnucpro-tui: error: 500_model.pth: checksum mismatch: git-sha1 "
        f"{git_blob_id(wrong)}, but {classifier_source('500_model.pth')} says "
        f"{git_blob_id(right)}; the download was discarded and nothing was placed"
    ]
    assert err.strip().splitlines()[-1] == message[0]
    assert not cache_paths(home)["500"].exists() and leftovers(home) == []
    manifest = json.loads(cache_paths(home)["manifest"].read_text())["files"]
    assert set(manifest) == {"300_model.pth"}  # verified, placed; 500 is not recorded

    published.mirror.add(published.mirror_path("500_model.pth"), right)
    code, out, err = run_cli(capsys, "classifier")
    assert code == 0, err
    assert cache_paths(home)["500"].read_bytes() == right
    line = out.split("500_model.pth", 1)[1].splitlines()[0]
    assert "downloaded" in line and f"verified against {classifier_source('500_model.pth')}" in line


def test_offline_check_catches_a_tampered_classifier(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    """A classifier replaced in place, its sha256 in the manifest rewritten to match: --offline
    still refuses it, by its git blob id, without the network."""
    assert run_cli(capsys, "classifier")[0] == 0
    target = cache_paths(home)["300"]
    tampered = bytearray(target.read_bytes())
    tampered[200] ^= 0xFF
    target.write_bytes(bytes(tampered))
    manifest_path = cache_paths(home)["manifest"]
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["300_model.pth"]["sha256"] = hashlib.sha256(tampered).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    before = len(published.mirror.requests)
    code, _out, err = run_cli(capsys, "--offline", "classifier")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"virnucpro-tui: error: {target}: checksum mismatch: git-sha1 "
        f"{git_blob_id(bytes(tampered))}, but {classifier_source('300_model.pth')} says "
        f"{git_blob_id(published.files['300_model.pth'])}; delete it and rerun "
        "`virnucpro-tui models download` to fetch it again"
    )
    assert len(published.mirror.requests) == before
    target.write_bytes(published.files["300_model.pth"])  # the published bytes pass offline
    code, out, err = run_cli(capsys, "--offline", "classifier")
    assert code == 0, err
    assert out.count(" present ") == 2


def test_hash_prefix_in_url_is_checked(tmp_path: Path) -> None:
    body = b"weights" * 1000
    prefix = hashlib.sha256(body).hexdigest()[:10]
    with serving() as server:
        server.add(f"/m/model-{prefix}.pt", body)
        server.add("/m/model-0123456789.pt", body)
        url = f"{server.url}/m/model-{prefix}.pt"
        check = transfer.checksum_from_url(url)
        assert check is not None and check.value == prefix
        transfer.fetch(url, tmp_path / "ok.pt", task="ok.pt", checksum=check)
        assert (tmp_path / "ok.pt").read_bytes() == body
        bad = f"{server.url}/m/model-0123456789.pt"
        with pytest.raises(transfer.ChecksumMismatch, match="the hash prefix in its URL says"):
            transfer.fetch(
                bad, tmp_path / "bad.pt", task="bad.pt", checksum=transfer.checksum_from_url(bad)
            )
        assert not (tmp_path / "bad.pt").exists()


# --- a full disk ----------------------------------------------------------------------------------


def test_download_into_a_full_disk(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    """The kernel's own ENOSPC: /dev/full stands where the partial file is written."""
    checkpoints = cache_paths(home)["esm"].parent
    checkpoints.mkdir(parents=True)
    partial = checkpoints / ".esm2_t36_3B_UR50D.pt.partial"
    partial.symlink_to("/dev/full")
    code, _out, err = run_cli(capsys, "esm")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"virnucpro-tui: error: {checkpoints}: No space left on device while downloading "
        "esm2_t36_3B_UR50D.pt (0 bytes kept in .esm2_t36_3B_UR50D.pt.partial); free some space, "
        "then rerun the same command to resume"
    )
    assert not cache_paths(home)["esm"].exists()


def test_not_enough_free_space_stops_before_the_transfer(
    home: Path, published: Published, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    real = transfer.shutil.disk_usage
    monkeypatch.setattr(transfer.shutil, "disk_usage", lambda p: real(p)._replace(free=1_000))
    code, _out, err = run_cli(capsys, "classifier")
    assert code == 1
    size = len(published.files["300_model.pth"])
    assert err.strip().splitlines()[-1] == (
        f"virnucpro-tui: error: {cache_paths(home)['300'].parent}: No space left on device: "
        f"300_model.pth needs {size / 1000:.1f} kB more, 1.0 kB free; free some space, then rerun "
        "the same command"
    )
    assert not cache_paths(home)["300"].exists()
    assert not cache_paths(home)["300"].with_name(".300_model.pth.partial").exists()


# --- offline ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--offline", "HF_HUB_OFFLINE"])
def test_offline_verifies_and_names_what_is_missing(
    how: str,
    home: Path,
    published: Published,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run_cli(capsys, "classifier", "dnabert")[0] == 0
    before = len(published.mirror.requests) + len(published.hub.requests)
    args = ["--offline"] if how == "--offline" else []
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(capsys, *args)
    assert code == 1
    reason = "--offline" if how == "--offline" else "HF_HUB_OFFLINE is set"
    assert err.strip().splitlines()[-1] == (
        f"virnucpro-tui: error: offline ({reason}): missing esm2_t36_3B_UR50D.pt, "
        "esm2_t36_3B_UR50D-contact-regression.pt; run `virnucpro-tui models download` where "
        "the network is reachable (or copy the files in)"
    )
    assert out.count(" present ") == 5  # two classifiers, three DNABERT-S files, all verified
    assert "verified against the hub's ETag (the blob's name)" in out
    assert len(published.mirror.requests) + len(published.hub.requests) == before
    code, out, err = run_cli(capsys, "classifier", "dnabert", *args)
    assert code == 0, err


# --- run without models --------------------------------------------------------------------------


def test_run_without_models_names_the_download_command(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import SAMPLE_CONTIGS

    code = main(["run", str(SAMPLE_CONTIGS), "--out", str(tmp_path / "out"), "--no-ui"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.splitlines()
    assert (
        lines[0] == "virnucpro-tui: error: model files not found: ESM-2 3B, DNABERT-S, classifier"
    )
    assert lines[1] == (
        "get them with `virnucpro-tui models download esm dnabert classifier` "
        "(it places them where a run looks)"
    )
    assert "  -> run `virnucpro-tui models download esm`, or download " + ESM_URL in err


def test_partial_files_are_never_located(home: Path) -> None:
    checkpoints = home / ".cache/torch/hub/checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / ".esm2_t36_3B_UR50D.pt.partial").write_bytes(b"x")
    classifiers = home / ".cache/virnucpro-tui"
    classifiers.mkdir(parents=True)
    (classifiers / ".500_model.pth.partial").write_bytes(b"x")
    with pytest.raises(ModelError, match="model files not found: ESM-2 3B, DNABERT-S, classifier"):
        resolve_model_paths(500)
    assert os.listdir(checkpoints) == [".esm2_t36_3B_UR50D.pt.partial"]


def test_a_second_download_of_the_same_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    with serving() as server, transfer._locked(transfer.partial_path(target), "model.pt"):
        server.add("/model.pt", b"x" * 100)
        with pytest.raises(transfer.DownloadError, match="another virnucpro-tui process"):
            transfer.fetch(f"{server.url}/model.pt", target, task="model.pt")
        assert server.gets() == [] and not target.exists()
        assert transfer.partial_path(target).with_name(".model.pt.partial.lock").exists()  # kept
