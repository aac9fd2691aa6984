"""Every code block of the docs that is a whole program runs as written, against a server of the test's own.

A block is a whole program when it starts with an import, or with a comment naming its file (``# app.py``).
Each runs in a fresh interpreter with the docs' ``redis://localhost:6379/0`` replaced by the test server's,
under a name other than ``__main__`` (so that ``if __name__ == "__main__":`` parts, which start servers, are
left out), and must end with status 0 and no traceback. The blocks that read for ever (a consumer's loop) are
not whole programs of this kind; the README's are run by ``test_readme.py``, the gunicorn example of
docs/servers.md with its commands by ``test_servers.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from redis_log_handler.testing import EmbeddedRedis

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_RUNS_FOR_EVER = (".records()", ".run()")


def whole_programs() -> list[tuple[str, str]]:
    """(``page #n``, text) of every python block of the docs that is a whole program."""
    programs = []
    for page in sorted(DOCS.glob("*.md")):
        for number, block in enumerate(_BLOCK.findall(page.read_text())):
            first = block.lstrip().splitlines()[0]
            whole = first.startswith(("import ", "from ")) or re.match(r"# \w+\.py\b", first)
            if whole and not any(marker in block for marker in _RUNS_FOR_EVER):
                programs.append((f"{page.name} #{number}", block))
    return programs


PROGRAMS = whole_programs()


def test_the_docs_have_whole_programs() -> None:
    """The pages this test reads still hold the programs it runs (a change of format would empty the list)."""
    assert len(PROGRAMS) >= 15, [name for name, _ in PROGRAMS]


@pytest.mark.parametrize("program", [text for _, text in PROGRAMS], ids=[name for name, _ in PROGRAMS])
def test_it_runs(program: str, redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """The block runs to its end, status 0, no traceback."""
    source = tmp_path / "example.py"
    source.write_text(program.replace("redis://localhost:6379/0", redis_server.url))
    ran = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(source)!r}, run_name='docs_example')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
