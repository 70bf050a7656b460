"""Pure functions from a RunView to Rich text: what each widget shows.

Widgets call these with their width, so a panel reflows from 80 to 200+ columns. Meaning never
rests on colour alone (NO_COLOR, 256-colour terminals): states are words, bars use distinct
glyphs. One module per part of the screen: ``text`` (building blocks), ``header``, ``worker``,
``tables``, ``results``, ``log``.
"""

from __future__ import annotations

from virnucpro_tui.ui.render.header import PROGRESS_LEGEND, header_text, progress_text, run_status
from virnucpro_tui.ui.render.log import (
    LOG_GROUP_LABELS,
    LOG_GROUPS,
    log_matches,
    log_text,
    recent_text,
)
from virnucpro_tui.ui.render.results import (
    DEMO_BANNER,
    completion_text,
    histogram_text,
    results_text,
)
from virnucpro_tui.ui.render.tables import (
    CALL_RULE,
    JOB_COLUMNS,
    Column,
    fit_table,
    job_cells,
    job_table,
    output_place,
    top_rows,
    top_table,
)
from virnucpro_tui.ui.render.text import join_lines, plain, wrap_words
from virnucpro_tui.ui.render.worker import MEMORY_LEGEND, worker_text, worker_title

__all__ = [
    "CALL_RULE",
    "DEMO_BANNER",
    "JOB_COLUMNS",
    "LOG_GROUPS",
    "LOG_GROUP_LABELS",
    "MEMORY_LEGEND",
    "PROGRESS_LEGEND",
    "Column",
    "completion_text",
    "fit_table",
    "header_text",
    "histogram_text",
    "job_cells",
    "job_table",
    "join_lines",
    "log_matches",
    "log_text",
    "output_place",
    "plain",
    "progress_text",
    "recent_text",
    "results_text",
    "run_status",
    "top_rows",
    "top_table",
    "worker_text",
    "worker_title",
    "wrap_words",
]
