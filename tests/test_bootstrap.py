"""scripts/bootstrap.sh shows pip's output only when pip fails (the real script, with a stand-in
python in the virtual environment that answers ``-m pip install`` as pip would)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

FAKE_PYTHON = """#!/usr/bin/env bash
# torch is importable; `-m pip install ...` prints what pip prints, then exits $PIP_STATUS
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "WARNING: Ignoring invalid distribution ~orch (a warning pip prints on success)"
  echo "ERROR: pip's own error line" >&2
  exit "${PIP_STATUS:-0}"
fi
exit 0
"""


def bootstrap(tmp_path: Path, pip_status: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {**os.environ, "VIRNUCPRO_VENV": str(venv), "PIP_STATUS": str(pip_status)}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bootstrap.sh"), "test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return proc, venv


def test_pip_output_hidden_when_pip_succeeds(tmp_path: Path) -> None:
    proc, venv = bootstrap(tmp_path, 0)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{venv}/bin/python\n"  # the Makefile reads the python from stdout
    assert proc.stderr == f"[bootstrap] installing virnucpro-tui .[test] into {venv}\n"
    log = (venv / "bootstrap-pip.log").read_text()
    assert "Ignoring invalid distribution" in log and "pip's own error line" in log


def test_pip_output_shown_when_pip_fails(tmp_path: Path) -> None:
    proc, venv = bootstrap(tmp_path, 3)
    assert proc.returncode == 3
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[:2] == [
        f"[bootstrap] installing virnucpro-tui .[test] into {venv}",
        f"[bootstrap] pip install failed (exit 3); its output, also in {venv}/bootstrap-pip.log:",
    ]
    assert sorted(lines[2:]) == sorted(
        [
            "WARNING: Ignoring invalid distribution ~orch (a warning pip prints on success)",
            "ERROR: pip's own error line",
        ]
    )
    assert not list(venv.glob(".virnucpro-installed-*"))  # a failed install is retried next time
