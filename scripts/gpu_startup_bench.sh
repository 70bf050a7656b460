#!/usr/bin/env bash
# One GPU call (device tool): the carried wheels, Python's bytecode cache warmed as a pip install
# has it, a check that a GPU standby's imports initialise no CUDA, then the bench's pipeline
# (cold and warm starts, the `run` command from launch with and without standbys).
#   bash scripts/gpu_startup_bench.sh [PRECISIONS] [SECONDS]    (writes under $OUT)
set -u
precisions=${1:-auto,fp8}
limit=${2:-560}
export PYTHONPATH=/tmp/site:$PWD
pip install -q --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt"
export PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
site=$(python3 -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
start=$(date +%s)
timeout 90 python3 -m compileall -q -j 16 "$site" /tmp/site "$PWD/virnucpro_tui" >/dev/null 2>&1
echo "bytecode cache warmed in $(($(date +%s) - start)) s"
gpu=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
CUDA_VISIBLE_DEVICES=$gpu python3 - <<'PY' | tee "$OUT/standby-imports.txt"
import os, time
t = time.perf_counter()
import torch
import virnucpro_tui.models.engine
t1 = time.perf_counter()
from virnucpro_tui.pool.worker_process import _import_compiler
assert _import_compiler()
t2 = time.perf_counter()
import pynvml
pynvml.nvmlInit()
handle = pynvml.nvmlDeviceGetHandleByIndex(0)
pids = [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]
print(f"torch+engine {t1 - t:.2f} s, compiler {t2 - t1:.2f} s, "
      f"cuda initialised {torch.cuda.is_initialized()}, on the GPU {os.getpid() in pids}")
PY
VIRNUCPRO_BENCH_PARTIAL=$OUT/partial.json python3 -m virnucpro_tui bench \
    --precision "$precisions" --skip prepare,stages,fidelity,baseline,scaling \
    --json "$OUT/bench-pipeline.json" 2>&1 | tail -45
left=$((limit - 20 - SECONDS))
if [ "$left" -gt 100 ]; then
    python3 scripts/gpu_startup_probe.py "$OUT" "$left" 2>&1 | grep -v '^ ' | tail -15
fi
