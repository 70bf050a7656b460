"""The Textual dashboard: the only package that imports Textual.

``app.run_dashboard`` drives a run live; ``app.attach_dashboard`` follows one read-only from its
``events.jsonl``. Both render from one :class:`~virnucpro_tui.run.view.RunView`.
"""
