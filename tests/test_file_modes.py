"""Every file a run or ``models download`` writes gets the mode a plain ``open()`` gives under
the user's umask (0644 under 022, 0640 under 027), every directory the mode of ``mkdir()``
(docs/outputs.md#file-modes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_CONTIGS, SAMPLE_READS
from virnucpro_tui.core import filemode
from virnucpro_tui.core.atomic import PartialFile, atomic_write_bytes, atomic_write_text

UMASKS = [
    pytest.param(0o022, id="umask-022"),
    pytest.param(0o027, id="umask-027"),
]  # the umask fixture (tests/conftest.py) sets one for a test


def modes(root: Path) -> dict[str, str]:
    """``path -> mode`` (octal) of everything under ``root``, ``root`` included; links skipped."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def expected(root: Path, mask: int) -> dict[str, str]:
    """What ``modes`` must be: files 0666 and directories 0777, less the umask."""
    out = {}
    for rel in modes(root):
        path = root / rel
        out[rel] = oct((0o777 if path.is_dir() else 0o666) & ~mask)
    return out


@pytest.mark.parametrize("umask", UMASKS, indirect=True)
def test_atomic_writes_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    assert filemode.current_umask() == umask
    tmp_path = tmp_path / "written"  # pytest makes tmp_path 0700
    tmp_path.mkdir()
    atomic_write_text(tmp_path / "a.txt", "text\n")
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"bytes")
    partial = PartialFile(tmp_path / "c.bin")
    assert stat.S_IMODE(partial.tmp.stat().st_mode) == 0o666 & ~umask  # while it is written
    partial.fh.write(b"x")
    partial.commit()
    (tmp_path / "plain.txt").write_text("what open() gives\n")
    plain = oct(stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode))
    assert plain == oct(0o666 & ~umask)
    assert modes(tmp_path) == expected(tmp_path, umask)
    assert modes(tmp_path)["a.txt"] == plain


def test_umask_is_read_without_setting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read from /proc (setting the umask to read it races with threads creating files);
    without /proc, the umask read at import stands."""
    calls: list[int] = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real_umask(m))
    stop = threading.Event()
    seen: set[int] = set()

    def watch() -> None:
        while not stop.is_set():
            seen.add(filemode.current_umask())

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for _ in range(200):
            assert filemode.plain_file_mode() == 0o666 & ~filemode._AT_IMPORT
    finally:
        stop.set()
        thread.join()
    assert calls == [] and seen == {filemode._AT_IMPORT}
    monkeypatch.setattr(filemode, "PROC_STATUS", "/nonexistent/status")
    monkeypatch.setattr(filemode, "_AT_IMPORT", 0o077)
    assert filemode.plain_file_mode() == 0o600 and filemode.plain_dir_mode() == 0o700


@pytest.mark.slow
@pytest.mark.parametrize("mask", UMASKS)
def test_a_real_run_writes_files_the_group_may_read(
    mask: int, tmp_path: Path, demo_env: dict[str, str]
) -> None:
    """A demo run of two inputs with saved features, in a process started with the umask:
    every file and directory in the run directory has the umask's mode."""
    out = tmp_path / "run"
    args = [SAMPLE_CONTIGS, SAMPLE_READS, "--demo", "--no-ui", "--devices", "cpu:1"]
    proc = subprocess.run(
        [sys.executable, "-m", "virnucpro_tui", "run", *map(str, args)]
        + ["--save-features", "--shard-size", "24", "--out", str(out)],
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        umask=mask,
    )
    assert proc.returncode == 0, proc.stderr
    found = modes(out)
    for name in (
        "manifest.json",
        "events.jsonl",
        "logs/worker-0.log",
        "sample_reads/prediction_results.txt",
        "sample_reads/prediction_results_highestscore.csv",
        "sample_reads/sequence_summary.tsv",
        "sample_reads/provenance.json",
        "sample_reads/NOTICE.txt",
        "sample_reads/prediction_features.pt",
        "shards/sample_contigs/000000.tsv",
        "shards/sample_contigs/000000.features.safetensors",
    ):
        assert found[name] == oct(0o666 & ~mask), name
    assert found["."] == found["shards"] == oct(0o777 & ~mask)
    assert found == expected(out, mask)
    assert len(found) > 25
