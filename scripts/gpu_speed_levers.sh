#!/usr/bin/env bash
# One GPU call (device tool): the carried wheels, then scripts/gpu_speed_probe.py on the speed
# levers not yet measured on a GPU: the fused rotary attention kernel alone and in ESM-2 (fp16
# and fp8), ESM-2's LayerNorms as persistent reductions, DNABERT-S batches without 8-column
# alignment (dna_align8 is the old padding) and coordinate-descent tuning; each variant in a
# fresh process with its own compile cache.
#   bash scripts/gpu_speed_levers.sh [SECONDS] [VARIANTS]    (writes under $OUT)
set -u
limit=${1:-560}
order=${2:-rotary_kernel,base,rotary,fp8,fp8_rotary,ln_persistent,dna_align8,cdt}
export PYTHONPATH=/tmp/site:$PWD
pip install -q --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt"
git log -1 --format=%H >"$OUT/tree.txt" 2>/dev/null || true
python3 scripts/gpu_speed_probe.py "$OUT" "$((limit - 15 - SECONDS))" "$order" 2>&1 |
    grep -v '^ ' | tail -40
