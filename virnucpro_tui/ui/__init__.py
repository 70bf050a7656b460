"""The Textual dashboard: the only package that imports Textual.

``launch.run_dashboard`` drives a run live; ``launch.attach_dashboard`` follows one read-only
from its run directory. Both render from one :class:`~virnucpro_tui.run.view.RunView`.
"""
