"""What a worker process imports, seen in the real processes of a run: each Python process of
the run writes its modules when multiprocessing's exit finalizers run (a worker leaves through
them, pool/worker.py), through a ``sitecustomize`` put on the run's ``PYTHONPATH``. A worker
scores shards; the dashboard, the report, the FASTA parser and transformers are the main
process's, and each of them costs a worker start-up time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SAMPLE_CONTIGS, cli, cli_env

DUMP_ENV = "VIRNUCPRO_TEST_MODULES_DIR"
SITECUSTOMIZE = f"""
import json, os, sys
from multiprocessing import util

def _write_modules():
    path = os.path.join(os.environ["{DUMP_ENV}"], f"{{os.getpid()}}.json")
    with open(path, "w") as out:
        json.dump(sorted(sys.modules), out)

if os.environ.get("{DUMP_ENV}"):
    util.Finalize(None, _write_modules, exitpriority=100)
"""
NOT_IN_A_WORKER = ("textual", "rich", "transformers", "matplotlib", "Bio", "ray", "pandas")


def _modules_of_a_run(demo_models: Any, tmp_path: Path) -> list[set[str]]:
    site, dumps = tmp_path / "site", tmp_path / "modules"
    site.mkdir()
    dumps.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = cli_env(demo_models.root)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env[DUMP_ENV] = str(dumps)
    out = tmp_path / "run"
    done = cli(["run", str(SAMPLE_CONTIGS), "--demo", "--no-ui", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    return [set(json.loads(p.read_text())) for p in sorted(dumps.glob("*.json"))]


@pytest.mark.slow
def test_a_worker_imports_neither_the_front_ends_nor_transformers(
    demo_models: Any, tmp_path: Path
) -> None:
    """Fails with ``import rich`` added to pool/worker.py (tried by hand)."""
    processes = _modules_of_a_run(demo_models, tmp_path)
    workers = [m for m in processes if "virnucpro_tui.models.engine" in m]
    main = [m for m in processes if "virnucpro_tui.run.orchestrator" in m]
    assert len(main) == 1 and len(workers) == 1, [len(m) for m in processes]
    assert "virnucpro_tui.run.orchestrator" not in workers[0]  # the layers, at run time
    tops = {name.split(".")[0] for name in workers[0]}
    assert not tops & set(NOT_IN_A_WORKER), sorted(tops & set(NOT_IN_A_WORKER))
    # the check sees them where they are: the main process parsed FASTA and wrote the report
    main_tops = {name.split(".")[0] for name in main[0]}
    assert {"Bio", "matplotlib"} <= main_tops
