"""The run: orchestration, the run directory, resume and output assembly. No Textual here."""
