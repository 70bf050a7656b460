# Two commands do all the set-up on a fresh machine:
#   make demo   bootstrap .venv, then score sample_data/ with the demo models (the dashboard
#               closes by itself when the run is done)
#   make test   bootstrap .venv with the test tools, then run lint, types, import contracts and
#               every test (on two pytest-xdist workers)
#   make test-fast   the unit tier alone (seconds; docs/architecture.md#tests)
SHELL := /bin/bash
PY = .venv/bin/python

.PHONY: demo test test-fast bench-tiny clean

demo:
	@scripts/bootstrap.sh >/dev/null
	VIRNUCPRO_TUI_EXIT_ON_DONE=1 $(PY) -m virnucpro_tui run sample_data/sample_contigs.fa sample_data/sample_reads.fa.gz --demo --out demo_out

test:
	@scripts/bootstrap.sh test,ray >/dev/null
	$(PY) -m ruff check virnucpro_tui tests scripts
	$(PY) -m ruff format --check virnucpro_tui tests scripts
	$(PY) -m mypy
	.venv/bin/lint-imports
	$(PY) -m pytest -q -n 2

test-fast:
	@scripts/bootstrap.sh test,ray >/dev/null
	$(PY) -m pytest -q -m "not slow and not ui"

bench-tiny:
	@scripts/bootstrap.sh >/dev/null
	$(PY) -m virnucpro_tui bench --tiny

clean:
	rm -rf .venv demo_out .pytest_cache .ruff_cache
