"""The package's shape: folder rules, no import cycles, small modules, and the layout page in step with the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .layout_page import PACKAGE, layout_page

ROOT = PACKAGE.parent
MAX_LINES = 400

# What each folder may import of the package besides itself. The top-level public modules
# (``__init__``, ``metrics``, ``testing``, ``integrations``) are the package's face: they import inward.
MAY_IMPORT = {
    "_shared": set(),
    "_schema": {"_shared"},
    "_writer": {"_schema", "_shared"},
    "_reader": {"_schema", "_shared"},
    "_cli": {"_writer", "_reader", "_schema", "_shared", "testing", "__init__"},
}


def module_name(path: Path) -> str:
    """The dotted name of *path* inside the package (``_writer.spill.spill``; ``__init__`` for the package)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str, source: str | None = None) -> tuple[set[str], set[str]]:
    """The package's modules *module* imports (dotted names), and the other top-level packages it imports.

    *source* stands in for the module's own text (to check that a crossing is seen).
    """
    path = MODULES[module] if module in MODULES else PACKAGE / (module.replace(".", "/") + ".py")
    package = module.split(".") if path.name == "__init__.py" and module != "__init__" else module.split(".")[:-1]
    own: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *node.module.split(".")] if node.module else base
            elif node.module and node.module.startswith("redis_log_handler"):
                target = node.module.split(".")[1:]
            else:
                if node.module and node.module != "__future__":
                    others.add(node.module.split(".")[0])
                continue
            names = [".".join([*target, alias.name]) for alias in node.names]
            own.update([name for name in names if name in MODULES] or [".".join(target) or "__init__"])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("redis_log_handler."):
                    own.add(alias.name.removeprefix("redis_log_handler."))
                else:
                    others.add(alias.name.split(".")[0])
    return {name for name in own if name in MODULES} - {module}, others


def folder(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


@pytest.mark.parametrize("module", [name for name in MODULES if folder(name) in MAY_IMPORT])
def test_each_folder_imports_only_what_its_rule_allows(module: str) -> None:
    """_shared imports nothing of the package, _schema only _shared, the writer and the reader never each other."""
    allowed = MAY_IMPORT[folder(module)] | {folder(module)}
    crossing = {name for name in imports(module)[0] if folder(name) not in allowed}
    assert not crossing, f"{module} imports {sorted(crossing)}"


def test_no_private_module_at_the_top_level() -> None:
    """The top level holds the public modules and the folders; every private module lives in a folder."""
    loose = [path.name for path in PACKAGE.glob("_*.py") if path.name not in ("__init__.py", "__main__.py")]
    assert not loose


@pytest.mark.parametrize("module", list(MODULES))
def test_modules_stay_small(module: str) -> None:
    """No module grows past 400 lines: one module, one job."""
    assert len(MODULES[module].read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("module", list(MODULES))
def test_every_module_says_what_it_holds(module: str) -> None:
    """Every module and folder has a docstring: the layout page is built from them."""
    assert ast.get_docstring(ast.parse(MODULES[module].read_text()))


@pytest.mark.parametrize(
    "module", ["_writer.intake", "_writer.handler", "_writer.shipper", "_writer.drain", "_writer.spill.spill"]
)
def test_no_redis_on_the_writers_side_of_the_transport(module: str) -> None:
    """Only the writer's transport (and delivery, through it) talks to redis-py."""
    assert "redis" not in imports(module)[1]


@pytest.mark.parametrize("module", [name for name in MODULES if name.startswith("_writer.transport.")])
def test_the_transport_imports_nothing_of_the_writer_above_it(module: str) -> None:
    """The transport is what the writer writes through: it is handed its settings (``TransportSettings``) and
    back-pressure's view of the loop, and imports no writer module outside ``_writer.transport``."""
    upward = {
        name for name in imports(module)[0] if folder(name) == "_writer" and not name.startswith("_writer.transport")
    }
    assert not upward, f"{module} imports {sorted(upward)}"


@pytest.mark.parametrize(
    "module",
    ["_writer.intake", "_writer.handler", "_writer.spill.spill", "_writer.spill.segments", "_schema.document"],
)
def test_no_asyncio_on_the_callers_side(module: str) -> None:
    """What runs on the application's threads never imports asyncio."""
    assert "asyncio" not in imports(module)[1]


def test_no_import_cycles() -> None:
    """The package's import graph has no cycle."""
    graph = {module: imports(module)[0] for module in MODULES}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for imported in graph[module]:
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_a_crossing_is_seen() -> None:
    """The import reader finds the package's modules however they are imported, so a crossing cannot hide."""
    source = (
        "from redis_log_handler._writer.intake import Intake\n"
        "from .._writer import drain\n"
        "from .settings import ReaderSettings\n"
        "import redis_log_handler._schema.document\n"
    )
    found = imports("_reader.new_module", source)[0]
    assert found == {"_writer.intake", "_writer.drain", "_reader.settings", "_schema.document"}


def test_the_layout_page_is_built_from_the_docstrings() -> None:
    """docs/layout.md is what tests/layout_page.py builds from the package (run it to rewrite the page)."""
    assert (ROOT / "docs" / "layout.md").read_text() == layout_page()
