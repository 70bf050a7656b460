"""The report of a run (docs/outputs.md): the viral sequences and regions, the published
figure redrawn, and one self-contained ``report.html``. A front end: it reads a run directory
and never runs anything; ``run`` calls it through the job-finished hook of ``run/``."""
