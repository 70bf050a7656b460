"""Warm-up batch sizes: full on a cold cache (compiling and tuning at the main shape), small on
a warm one (only loading what was saved)."""

from __future__ import annotations

import pytest

from virnucpro_tui.models.warmup import LIGHT_ROWS, warmup_rows


@pytest.mark.parametrize(
    ("name", "budget", "max_batch", "full"),
    [
        ("esm", 40_488, 1024, 241),  # an H100's ESM-2 budget: 241 proteins of 168 tokens
        ("dnabert", 229_376, 2048, 2048),  # DNABERT-S: capped by the batch limit
        ("esm", 4_096, 1024, 24),  # the CPU's budget
        ("esm", 100, 1024, 2),  # never fewer than two rows (a padded and an unpadded one)
    ],
)
def test_a_warm_cache_warms_up_on_a_small_batch_and_a_cold_one_on_a_full_batch(
    name: str, budget: int, max_batch: int, full: int
) -> None:
    assert warmup_rows(name, budget, max_batch) == full
    assert warmup_rows(name, budget, max_batch, light=True) == min(full, LIGHT_ROWS)
    assert LIGHT_ROWS == 8
