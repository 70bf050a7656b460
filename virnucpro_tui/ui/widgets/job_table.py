"""The job queue: one row per input."""

from __future__ import annotations

from rich.text import Text

from virnucpro_tui.ui.render.tables import JOB_COLUMNS, Column, job_cells
from virnucpro_tui.ui.widgets.base import TableWidget


class JobTable(TableWidget):
    """The job queue: one row per input."""

    def rows(self) -> tuple[tuple[Column, ...], list[tuple[Text, ...]]]:
        view = self.state.view
        return JOB_COLUMNS, [job_cells(job, view) for job in view.jobs.values()]
