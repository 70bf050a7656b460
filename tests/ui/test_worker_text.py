"""The worker panel's counts read as English: one shard, one frame (ui/render/worker.py)."""

from __future__ import annotations

import pytest

from virnucpro_tui.run.worker_view import WorkerView
from virnucpro_tui.ui.render.worker import worker_text


@pytest.mark.parametrize(
    ("shards", "frames", "shown"),
    [
        (1, 24, "1 shard, 24 frames"),
        (5, 1, "5 shards, 1 frame"),
        (1234, 2, "1,234 shards, 2 frames"),
    ],
)
def test_the_panel_counts_shards_and_frames_in_the_right_number(
    shards: int, frames: int, shown: str
) -> None:
    worker = WorkerView(worker=0, shards_done=shards, frames_done=frames)
    text = worker_text(worker, 120, now=0.0, running=True).plain
    assert shown in text
