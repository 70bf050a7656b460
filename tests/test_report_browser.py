"""report.html in a real browser: headless Chromium (Debian's ``chromium``; .ci/run installs it)
renders the page of a run, and the test reads what it shows (docs/outputs.md#reporthtml)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.browser import Browser, chromium_path
from tests.test_report import run, run_config, summary_rows, write_inputs
from virnucpro_tui.core.outputs import REPORT_FILE

pytestmark = pytest.mark.slow  # starts a browser

CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (apt-get install chromium; .ci/run does)",
)

FIELDS_JS = """JSON.stringify(Array.from(document.querySelectorAll('section[data-job]')).map(s => [
  s.dataset.job,
  Object.fromEntries(Array.from(s.querySelectorAll('[data-field]')).map(e => [e.dataset.field, e.dataset.value])),
  s.querySelectorAll('table[data-table=top] tbody tr').length]))"""
FIGURES_JS = """JSON.stringify(Array.from(document.querySelectorAll('img[data-figure]')).map(i => {
  const r = i.getBoundingClientRect();
  return [i.dataset.figure, i.naturalWidth, i.naturalHeight, r.width, r.height];}))"""


@needs_chromium
def test_the_report_renders_the_runs_numbers_with_no_error_and_no_outside_request(
    tmp_path: Path, demo_models
) -> None:
    from virnucpro_tui.models.settings import ModelFiles

    models = ModelFiles(demo_models.esm, demo_models.dnabert, demo_models.classifier_500)
    inputs = write_inputs(tmp_path)
    cfg = run_config(inputs, tmp_path / "run", models, report=True)
    cfg.demo = True
    run(cfg)
    page = tmp_path / "run" / REPORT_FILE
    assert page.stat().st_size < 5 * 2**20
    assert assert_self_contained(page.read_text())

    browser = Browser(CHROMIUM)  # type: ignore[arg-type]
    try:
        load = browser.load(page.as_uri())
        sections = json.loads(browser.evaluate(FIELDS_JS))
        figures = json.loads(browser.evaluate(FIGURES_JS))
        banner = browser.evaluate("document.querySelector('[data-banner=demo]').innerText")
        sort_works = browser.evaluate(
            "(() => { const th = document.querySelector('table[data-table=top] th:nth-child(2)');"
            " th.click(); const v = Array.from(th.closest('table').tBodies[0].rows)"
            ".map(r => +r.cells[1].dataset.value); return v.every((x, i) => !i || v[i-1] <= x); })()"
        )
    finally:
        browser.close()

    outside = [u for u in load.requests if not u.startswith(("file:", "data:"))]
    assert outside == []
    assert load.exceptions == []
    assert [c for c in load.console if c[0] == "error"] == []
    assert "NOT biological predictions" in banner
    assert sort_works is True

    assert [s[0] for s in sections] == ["contigs", "reads"]
    for job, shown, table_rows in sections:
        rows = summary_rows(tmp_path / "run" / job)
        calls = Counter(r["call"] for r in rows)
        assert shown["sequences"] == str(len(rows))
        assert shown["virus"] == str(calls["virus"])
        assert shown["others"] == str(calls["others"])
        assert shown["no_frames"] == str(calls["no_frames"])
        assert shown["frames"] == str(sum(int(r["frames"]) for r in rows))
        assert table_rows == min(100, calls["virus"])
    kinds = Counter(f[0] for f in figures)
    assert kinds == {"timeline": 1, "histogram": 2, "tracks": 2}
    for name, natural_w, natural_h, shown_w, shown_h in figures:
        assert natural_w > 0 and natural_h > 0 and shown_w > 100 and shown_h > 50, name


def assert_self_contained(html: str) -> bool:
    """No reference a browser would fetch from elsewhere (the browser test checks requests)."""
    for marker in ("http://", "https://", "//cdn", "@import", "<link"):
        assert marker not in html, marker
    return True
