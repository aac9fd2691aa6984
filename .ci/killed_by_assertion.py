"""A pytest plugin for ``.ci/mutants.py``: note each test that fails on an ``AssertionError``, and stop at the first.

A mutant counts as killed only by such a failure: a crash (any other exception), an error in a fixture, a
collection error or a timeout (pytest-timeout fails a test with ``Failed``) says nothing about the promise
the mutant breaks. The ids go, one per line, to the file named by ``$MUTANT_KILLS``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
    """Record a test whose call failed on an assertion, and end the session: one kill is enough."""
    if call.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        with open(os.environ["MUTANT_KILLS"], "a", encoding="utf-8") as kills:
            kills.write(item.nodeid + "\n")
        item.session.shouldstop = "a named test failed on an assertion"
