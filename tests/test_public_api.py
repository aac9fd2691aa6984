"""What users import: the package's names, every import the docs show, and the testing page's recipes, as written."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import redis_log_handler

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FROM_IMPORT = re.compile(r"from (redis_log_handler[\w.]*) import ([\w, ]+)")
_DOTTED = re.compile(r"(?<![\w/])(redis_log_handler(?:\.\w+)+)")
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def documented_names() -> set[tuple[str, str | None]]:
    """(module, name) for each ``from redis_log_handler... import name``, and (dotted name, None) in the docs."""
    found: set[tuple[str, str | None]] = set()
    for document in DOCUMENTS:
        text = document.read_text()
        for module, names in _FROM_IMPORT.findall(text):
            found.update((module, name.strip()) for name in names.split(",") if name.strip())
        found.update((dotted, None) for dotted in _DOTTED.findall(text))
    return found


def resolve(dotted: str) -> object:
    """The object *dotted* names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(dotted)


def test_the_package_exports_what_it_always_has() -> None:
    """``redis_log_handler.__all__`` is the public API; a layout change must not change it."""
    assert sorted(redis_log_handler.__all__) == [
        "LoguruSink",
        "RedisHandler",
        "RedisLogConsumer",
        "StructlogProcessor",
        "__version__",
        "flush_all",
        "shard_keys",
        "to_log_record",
    ]
    for name in redis_log_handler.__all__:
        assert getattr(redis_log_handler, name) is not None


def test_the_docs_show_imports() -> None:
    """The scan below has something to check (the README alone shows several imports)."""
    names = documented_names()
    assert ("redis_log_handler", "RedisHandler") in names
    assert ("redis_log_handler.testing", "EmbeddedRedis") in names
    assert len(names) >= 10


@pytest.mark.parametrize(("module", "name"), sorted(documented_names(), key=str))
def test_every_documented_import_works(module: str, name: str | None) -> None:
    """Each ``from redis_log_handler... import name`` and ``redis_log_handler.x.y`` in the docs resolves."""
    if ".integrations.rq" in module:
        pytest.importorskip("rq")
    target = resolve(module) if name is None else getattr(importlib.import_module(module), name)
    assert target is not None


def python_blocks_of_the_testing_page() -> list[str]:
    return _PYTHON_BLOCK.findall((ROOT / "docs" / "testing.md").read_text())


@pytest.mark.slow
def test_the_pytest_recipe_runs(tmp_path: Path) -> None:
    """The testing page's fixtures and test, saved as a user would, pass under pytest in a fresh process."""
    fixtures, test = (
        block
        for block in python_blocks_of_the_testing_page()
        if "def redis_server" in block or "def test_a_warning_reaches_redis" in block
    )
    (tmp_path / "conftest.py").write_text(fixtures)
    (tmp_path / "test_logging.py").write_text(test)
    assert_one_test_passes(tmp_path, os.environ)


def test_the_in_memory_recipe_runs(tmp_path: Path) -> None:
    """The testing page's test on the in-memory transport (dictConfig, faults, records asserted) passes under
    pytest as a user saves it, with no server on any port.
    """
    [test] = [block for block in python_blocks_of_the_testing_page() if "InMemoryTransport()" in block]
    (tmp_path / "test_logging.py").write_text(test)
    # REDIS_URL points nowhere: the transport must be all the test uses.
    assert_one_test_passes(tmp_path, {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"})


def assert_one_test_passes(directory: Path, environment: Mapping[str, str]) -> None:
    """Run pytest on *directory* in a fresh process, as a user would; its one test must pass."""
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
        check=False,
        env=dict(environment),
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_the_server_examples_run(index: int) -> None:
    """The context-manager example and the restart example run as written, flush included."""
    examples = [block for block in python_blocks_of_the_testing_page() if block.lstrip().startswith(("from", "with"))]
    examples = [block for block in examples if "with EmbeddedRedis() as server" in block]
    prelude = (
        "import logging\n"
        "from redis_log_handler import RedisHandler\n"
        "from redis_log_handler.testing import EmbeddedRedis\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", prelude + examples[index]], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
