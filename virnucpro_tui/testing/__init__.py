"""Test doubles, for the tests and ``scripts/capacity.py`` only: no production module imports
this package (an import contract in pyproject.toml keeps it so). ``fake_backend.FakeBackend`` is
an in-memory pool backend (docs/architecture.md#the-pool-one-supervisor-two-transports)."""
