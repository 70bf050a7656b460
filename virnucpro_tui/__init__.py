"""virnucpro-tui: a production orchestrator for the VirNucPro viral-sequence identifier."""

__version__ = "0.1.0"
