"""The Results tab's sequence track and the report key (docs/outputs.md): a real finished run
(fake workers, real files) read back into the dashboard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.test_report import run, run_config, summary_rows, write_inputs
from tests.ui.helpers import notifications, run_events, scripted_app, settle, wait_for
from virnucpro_tui.models.settings import ModelFiles
from virnucpro_tui.pool.events import parse_event
from virnucpro_tui.ui.screens import CompletionScreen
from virnucpro_tui.ui.widgets import SequenceTrack

pytestmark = pytest.mark.ui


def test_a_picked_sequence_is_drawn_along_its_length_and_r_names_the_report(
    tmp_path: Path, demo_models
) -> None:
    models = ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)
    out = tmp_path / "run"
    run(run_config(write_inputs(tmp_path), out, models, report=True))
    lengths = {r["Sequence_ID"]: r for job in ("contigs", "reads") for r in summary_rows(out / job)}

    async def scenario() -> None:
        app = scripted_app([parse_event(e) for e in run_events(out)], toasts=True)
        async with app.run_test(size=(140, 60)) as pilot:
            await settle(pilot, app)
            await wait_for(pilot, lambda: isinstance(app.screen, CompletionScreen), what="the end")
            await pilot.press("escape", "2")  # from the run's summary to the Results tab
            track = app.query_one("#track", SequenceTrack)
            track.focus()
            top = app.view.top_sequences
            await wait_for(pilot, lambda: top[0][0] in track.tracks, what="the first track")
            await settle(pilot, app)
            first = track.shown.splitlines()
            assert first[0].startswith(f"Track 1/{len(top)}")
            sid = top[0][0]
            row = lengths[sid]
            assert first[1].startswith(f"{sid}  {int(row['length']):,} bp · virus")
            assert f"{row['viral_chunks']}/{row['chunks_with_frames']} viral chunks" in first[1]
            bars = "\n".join(first[2:6])
            assert any(c in bars for c in "▁▂▃▄▅▆▇█")
            assert "━" in first[6]  # a sequence called virus has a viral region
            assert first[7].rstrip().endswith(f"{int(row['length']):,} bp")
            await pilot.press("down")
            await settle(pilot, app)
            assert track.selected == 1
            await wait_for(pilot, lambda: top[1][0] in track.tracks, what="the second track")
            await settle(pilot, app)
            assert track.shown.splitlines()[1].startswith(top[1][0])
            await pilot.press("r")
            await settle(pilot, app)
            assert any(str(out / "report.html") in n for n in notifications(app))

    asyncio.run(scenario())
