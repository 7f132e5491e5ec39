"""The source's layout: modules that import each other without a cycle, and a transport-only
client."""

import ast
from graphlib import TopologicalSorter
from itertools import pairwise
from pathlib import Path

import hypertracker_source

ROOT = Path(hypertracker_source.__file__).parent.parent


def module_name(path: Path) -> str:
    """A module's dotted name: hypertracker_source.report.charts; a package's, its __init__'s."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCE_MODULES = {
    module_name(path): path for path in Path(hypertracker_source.__file__).parent.rglob("*.py")
}


def imported_modules(path: Path) -> set[str]:
    """The source's modules a module imports, TYPE_CHECKING blocks and function bodies included."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                imported.add(submodule if submodule in SOURCE_MODULES else node.module)
    return {name for name in imported if name in SOURCE_MODULES} - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    """Each module of the source, and the source's modules it imports."""
    return {name: imported_modules(path) for name, path in SOURCE_MODULES.items()}


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """Whether `start` imports `goal`, directly or through other modules of the source."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return False


def test_the_sources_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    TopologicalSorter(graph).prepare()
    for lower, upper in pairwise(LAYERS):
        assert reaches(graph, upper, lower) and not reaches(graph, lower, upper), (lower, upper)


LAYERS = (
    "hypertracker_source.endpoints",
    "hypertracker_source.client",
    "hypertracker_source.heatmap",
    "hypertracker_source",
    "hypertracker_source.cli",
)
"""Modules each below the next: the endpoints, the transport, an entity, the source, its CLI."""


def test_the_client_is_transport_only() -> None:
    imported = import_graph()["hypertracker_source.client"]
    assert imported == {
        "hypertracker_source.endpoints",
        "hypertracker_source.exceptions",
        "hypertracker_source.request_flow",
    }
