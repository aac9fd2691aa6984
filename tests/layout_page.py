"""Builds docs/layout.md from the package's own docstrings: ``python tests/layout_page.py`` rewrites the page."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "redis_log_handler"
PAGE = PACKAGE.parent / "docs" / "layout.md"
FOLDERS = [
    "_writer",
    "_writer/spill",
    "_writer/transport",
    "_reader",
    "_schema",
    "_cli",
    "_cli/web",
    "_shared",
    "integrations",
]
PUBLIC = ["__init__.py", "__main__.py", "metrics.py", "testing.py"]

INTRO = """\
# Package layout

<!-- Built by `python tests/layout_page.py` from the package's docstrings; a test checks that it is in step. -->

The folders are the architecture: the writer (`RedisHandler` and everything between a logging call and
Redis), the reader (`RedisLogConsumer`), the schema both agree on, the command line, and a small shared
part. The top level holds only what users import. Each folder says in its docstring what it holds and
what it may import; `tests/test_structure.py` checks the rules:

| folder | may import (besides itself) |
|---|---|
| `_shared/` | nothing of the package |
| `_schema/` | `_shared` |
| `_writer/` | `_schema`, `_shared` (never the reader) |
| `_reader/` | `_schema`, `_shared` (never the writer) |
| `_cli/` | everything |

and there is no import cycle and no module over 400 lines. A record's way through the writer reads in
the module names: `handler` → `intake` → `drain` → `trip` → `delivery` → `transport/` → Redis; see
[how it works](how-it-works.md) for what happens at each step.
"""


def markdown(text: str) -> str:
    """A docstring's reStructuredText literals and roles as Markdown."""
    text = re.sub(r":(?:class|meth|func):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def summary(path: Path) -> str:
    return markdown(" ".join(docstring(path).split("\n\n")[0].split())).replace("|", "\\|")


def table(paths: list[Path], base: Path) -> list[str]:
    rows = ["| module | what it holds |", "|---|---|"]
    rows += [f"| `{path.relative_to(base)}` | {summary(path)} |" for path in paths]
    return rows


def layout_page() -> str:
    """The page, built from the folders' and modules' docstrings."""
    lines = [INTRO, "## `redis_log_handler/`", "", *table([PACKAGE / name for name in PUBLIC], PACKAGE), ""]
    for name in FOLDERS:
        directory = PACKAGE / name
        lines += [f"## `redis_log_handler/{name}/`", "", markdown(docstring(directory / "__init__.py")), ""]
        modules = sorted(path for path in directory.glob("*.py") if path.name != "__init__.py")
        lines += [*table(modules, directory), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    PAGE.write_text(layout_page())
