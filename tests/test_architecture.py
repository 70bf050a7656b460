"""The package's shape, checked (docs/architecture.md#layers): no import cycle inside the package,
deferred and TYPE_CHECKING imports included; no module over 500 lines; no function over 60 lines
in run/, pool/ and ui/."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "virnucpro_tui"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
FUNCTION_LIMITED = ("run", "pool", "ui")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_package_has_no_import_cycle_counting_deferred_and_type_checking_imports() -> None:
    graph = grimp.build_graph("virnucpro_tui", exclude_type_checking_imports=False, cache_dir=None)
    # grimp reads imports inside functions and under TYPE_CHECKING too: both are in the graph
    assert graph.direct_import_exists(
        importer="virnucpro_tui.cli.commands", imported="virnucpro_tui.run.orchestrator"
    )  # a deferred import
    assert graph.direct_import_exists(
        importer="virnucpro_tui.cli.run_options", imported="virnucpro_tui.run.config"
    )  # a TYPE_CHECKING import (and a deferred one)
    assert import_cycles(graph) == []


def modules() -> Iterable[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def test_no_module_is_over_500_lines() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in modules()}
    assert {name: n for name, n in lines.items() if n > MAX_MODULE_LINES} == {}
    assert len(lines) > 100 and max(lines.values()) > 400  # it read the whole package


def test_no_function_in_run_pool_or_ui_is_over_60_lines() -> None:
    long = []
    for name, path in modules():
        if name.split("/")[0] not in FUNCTION_LIMITED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
