"""Check models/glu_gelu.py's Triton kernel on a CPU with Triton's interpreter (no GPU).

    pip install --target /tmp/tritonsite triton==3.6.0
    PYTHONPATH=/tmp/tritonsite TRITON_INTERPRET=1 .venv/bin/python scripts/glu_kernel_interpreter_check.py

In float16 (the interpreter's bfloat16 products are wrong), against the reference's arithmetic in
float32 (one product, split, ``gelu(gate) * up``): rows that are not a multiple of the tile, two
tile shapes, and DNABERT-S's MLP with the kernel against the module's own forward. On a GPU,
scripts/gpu_speed_probe.py checks it in bfloat16 at the real shapes.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import torch


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print("set TRITON_INTERPRET=1 (and put triton on PYTHONPATH)", file=sys.stderr)
        return 2
    from virnucpro_tui.models.dnabert import _GluMlp
    from virnucpro_tui.models.glu_gelu import TileConfig, glu_gelu, glu_gelu_reference, launch

    torch.manual_seed(0)
    x = torch.randn(200, 128, dtype=torch.float16)
    w = torch.randn(512, 128, dtype=torch.float16) * 0.1
    truth = glu_gelu_reference(x.float(), w.float())
    half = float((glu_gelu_reference(x, w).float() - truth).abs().max())
    worst = half
    for cfg in (TileConfig(64, 128, 64, 4, 4, 2), TileConfig(32, 64, 32, 8, 4, 2)):
        err = float((launch(x, w, cfg).float() - truth).abs().max())
        print(f"{cfg}: max |kernel - fp32| {err:.2e} (float16 reference: {half:.2e})")
        worst = max(worst, err)
    mlp = _GluMlp(SimpleNamespace(hidden_size=128, intermediate_size=256, layer_norm_eps=1e-12))
    with torch.no_grad():
        h = torch.randn(3, 50, 128)
        ref = mlp(h)
        m = mlp.half()
        h16 = h.half()
        got = m.layernorm(m.wo(glu_gelu(h16, m.gated_layers.weight)) + h16).float()
    cos = float(torch.nn.functional.cosine_similarity(got.flatten(1), ref.flatten(1)).min())
    print(f"DNABERT-S MLP with the kernel (float16) against fp32: cosine {cos:.7f}")
    return 0 if worst <= 2 * half and cos > 0.99999 else 1


if __name__ == "__main__":
    sys.exit(main())
