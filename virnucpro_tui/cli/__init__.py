"""Command line: ``virnucpro-tui run | prepare | attach | bench | models | check-precision``
(exit codes: README, docs/reliability.md).

Exit codes: 0 success; 1 error; 2 usage or bad input (one clear line, no traceback);
130 interrupted (resumable).

``parser.py`` builds the parser, ``run_options.py`` declares each ``run`` option once (the parser
and the run's settings come from it), ``commands.py`` runs each command.
"""

from __future__ import annotations

import os
import sys
import traceback

from virnucpro_tui.cli.commands import COMMANDS, DEMO_COMMAND
from virnucpro_tui.cli.parser import PROG, build_parser
from virnucpro_tui.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, VirnucproError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VirnucproError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - last resort: one line, details on request
        if os.environ.get("VIRNUCPRO_TUI_DEBUG"):
            traceback.print_exc()
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (set VIRNUCPRO_TUI_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR


__all__ = ["DEMO_COMMAND", "EXIT_USAGE", "build_parser", "main"]
