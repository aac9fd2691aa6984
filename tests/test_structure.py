"""The package's shape: no import cycles, and the leaves of docs/how-it-works.md import no more than it says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "redis_log_handler"


def imports(module: str) -> set[str]:
    """Every module *module* imports: package modules as ``_name``, others by their top-level name."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.add(node.module or "")
            elif node.module and node.module != "__future__":
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def package_imports(module: str) -> set[str]:
    """The package's own modules that *module* imports."""
    return {name for name in imports(module) if (PACKAGE / f"{name}.py").exists()}


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("_fork", set()),
        ("_native", set()),
        ("_wire", set()),
        ("_segments", set()),
        ("_json", set()),
        ("_counters", {"_native"}),
        ("_inside", set()),
        ("_intake", {"_ledger", "_backpressure", "_native"}),
        ("_backpressure", {"_fork", "_native"}),
        ("_ledger", {"_counters"}),
        ("_encoding", {"_json", "_ecs"}),
        ("_ecs", set()),
        ("_entries", set()),
        ("_trace", set()),
        ("_live", set()),
        ("_recent", set()),
        ("_log_record", {"_ecs"}),
    ],
)
def test_leaf_modules_import_only_what_the_module_map_says(module: str, allowed: set[str]) -> None:
    """A leaf of the data path imports no more of the package than the module map allows."""
    assert package_imports(module) <= allowed


@pytest.mark.parametrize("module", ["_intake", "_handler", "_shipper", "_consumer", "_spill", "_segments"])
def test_no_redis_where_the_map_says_none(module: str) -> None:
    """Only _delivery's side of the data path talks to redis-py."""
    assert "redis" not in imports(module)


@pytest.mark.parametrize("module", ["_intake", "_handler", "_spill", "_segments", "_document", "_sources"])
def test_no_asyncio_on_the_callers_side(module: str) -> None:
    """What runs on the application's threads never imports asyncio."""
    assert "asyncio" not in imports(module)


READER_SIDE = [
    "_reader", "_reader_config", "_group", "_prefetch", "_entries", "_pop", "_dead_letter", "_recent",
    "_log_record", "_tail", "_tail_format", "_consume_command", "_shard_feed", "_retention", "_key_report",
]  # fmt: skip
WRITER_SIDE = {
    "_handler", "_intake", "_shipper", "_consumer", "_delivery", "_runtime", "_redis", "_endpoint", "_commands",
    "_spill", "_flush",
}  # fmt: skip


@pytest.mark.parametrize("module", READER_SIDE)
def test_the_reader_side_stands_apart(module: str) -> None:
    """The reader side shares the schema and the URL checks with the writer, not its runtime or delivery."""
    assert not package_imports(module) & WRITER_SIDE


def test_no_import_cycles() -> None:
    """The package's import graph has no cycle."""
    graph = {path.stem: package_imports(path.stem) for path in PACKAGE.glob("*.py")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for imported in graph.get(module, set()):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)
