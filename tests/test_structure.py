"""The source's layout: modules that import each other without a cycle, and a transport-only
client."""

import ast
from graphlib import TopologicalSorter
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


LAYERS = {
    "configuration": ("exceptions", "config"),
    "transport": ("api",),
    "entities": ("schema", "fills", "snapshots", "tables"),
    "destinations": ("destinations",),
    "runs": ("runs",),
    "source": ("",),
    "commands": ("commands", "report"),
}
"""Every top-level module and package of the source by layer, lowest first, as docs/architecture.md
draws them; a package's modules are in its layer."""


def layer_of(module: str) -> int:
    """The rank of a module's layer, 0 for configuration: a package's modules share its layer."""
    name = module.removeprefix("hypertracker_source").removeprefix(".")
    top = name.split(".")[0]
    return next(rank for rank, names in enumerate(LAYERS.values()) if top in names)


def test_every_module_has_a_layer() -> None:
    for module in SOURCE_MODULES:
        assert layer_of(module) >= 0


def test_the_sources_modules_import_only_their_own_layer_or_lower_without_a_cycle() -> None:
    graph = import_graph()
    TopologicalSorter(graph).prepare()
    upward = [
        (module, imported)
        for module, imports in graph.items()
        for imported in imports
        if layer_of(imported) > layer_of(module)
    ]
    assert upward == []


def test_the_client_is_transport_only() -> None:
    imported = import_graph()["hypertracker_source.api.client"]
    assert imported == {
        "hypertracker_source.api.answers",
        "hypertracker_source.api.budget",
        "hypertracker_source.api.endpoints",
        "hypertracker_source.api.errors",
        "hypertracker_source.api.files",
        "hypertracker_source.api.request_flow",
        "hypertracker_source.config.defaults",
    }


TOP_LEVEL_MODULES = 8
"""At most this many modules beside the packages: the rest live in the package of their layer."""
MODULE_LINES = 350
"""At most this many lines in any module of the source."""


def test_the_package_top_holds_few_modules_and_every_module_is_short() -> None:
    package = Path(hypertracker_source.__file__).parent
    assert len(list(package.glob("*.py"))) <= TOP_LEVEL_MODULES
    long_modules = {
        name: lines
        for name, path in SOURCE_MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES
    }
    assert long_modules == {}


def test_every_top_level_name_has_a_layer_and_docs_architecture_names_every_module() -> None:
    package = Path(hypertracker_source.__file__).parent
    tops = {path.stem for path in package.glob("*.py")} - {"__init__"}
    tops |= {path.parent.name for path in package.glob("*/__init__.py")}
    layered = {name for names in LAYERS.values() for name in names}
    assert tops <= layered
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    undocumented = sorted(
        str(relative)
        for path in SOURCE_MODULES.values()
        if path.name != "__init__.py"
        and f"`{(relative := path.relative_to(package))}`" not in architecture
    )
    assert undocumented == []
