"""What the tests that start real servers and workers share: their tools, requests, stops, and the count from outside.

The count from outside: every record an application logged is in Redis or named on stderr by the process that
logged it, in the line the handler writes when it closes with records it did not write
(``closed: of N records logged to 'key' in this process, W were written ...``). Nothing else may account for a
record: a record neither in Redis nor named is a silent loss.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from .helpers import alive, read_list

STOP_WITHIN = 15.0  # seconds from SIGTERM to the server's exit

# The line a handler writes when it closes with records it did not write.
_NAMED = re.compile(
    r"redis_log_handler\[(?P<pid>\d+)\]: closed: of (?P<logged>\d+) records? logged to '(?P<key>[^']*)' in this "
    r"process, (?P<written>\d+) (?:was|were) written"
)


def get(url: str, timeout: float = 5) -> str | None:
    """The body of a GET on *url*, or None if it failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a loopback test server
            return str(response.read().decode())
    except OSError:
        return None


def python_path(directory: Path) -> str:
    """PYTHONPATH for a server started in *directory*: the application's folder first, then the caller's."""
    return os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))


def tool(name: str) -> str:
    """A console script of the test environment (beside this interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: it comes with the test extra"
    return found


def stop(process: subprocess.Popen[str], then: Callable[[], None]) -> tuple[float, str]:
    """Send SIGTERM, call *then*, wait for the exit (SIGKILL after STOP_WITHIN + 10 s); returns (seconds, stderr)."""
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    then()
    try:
        _, stderr = process.communicate(timeout=STOP_WITHIN + 10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # hung workers too: they hold the stderr pipe open
        _, stderr = process.communicate()
        return float("inf"), stderr
    return time.monotonic() - started, stderr


def messages_once(client: redis.Redis, key: str) -> collections.Counter[str]:
    """Every message in the list *key* with how often it arrived; fails on a duplicated record id."""
    documents = read_list(client, key)
    ids = [document["id"] for document in documents]
    assert len(set(ids)) == len(ids), "a record was written twice"
    return collections.Counter(document["message"] for document in documents)


@dataclass(frozen=True)
class Named:
    """One process's line about the records it closed without writing."""

    pid: int
    logged: int
    written: int

    @property
    def not_written(self) -> int:
        return self.logged - self.written


def named(stderr: str, key: str) -> list[Named]:
    """What each process named on *stderr* as logged to *key* and not written (its last line: they count from the
    start)."""
    last = {}
    for found in _NAMED.finditer(stderr):
        if found["key"] == key:
            last[int(found["pid"])] = Named(int(found["pid"]), int(found["logged"]), int(found["written"]))
    return list(last.values())


def written_by_process(documents: list[dict[str, Any]]) -> collections.Counter[int]:
    """How many of *documents* each process wrote."""
    return collections.Counter(int(document["process"]) for document in documents)


def named_not_written(stderr: str, key: str, client: redis.Redis, *, per_process: bool = True) -> int:
    """How many records logged to the list *key* the processes named on *stderr* as not written.

    With *per_process*, each named line must agree with Redis: the records it says its process wrote are the
    ones there from that process (not so under uWSGI, whose worker 1 writes the master's records as its own).
    """
    lines = named(stderr, key)
    if per_process:
        by_process = written_by_process(read_list(client, key))
        for line in lines:
            assert line.written == by_process[line.pid], f"process {line.pid} miscounted: {stderr[-3000:]}"
    return sum(line.not_written for line in lines)


GUNICORN_READY_HOOKS = """
    import os

    def post_worker_init(worker):  # after the worker installed its signal handlers
        open(f"ready-{os.getpid()}", "w").close()
"""
"""A gunicorn configuration file whose workers touch ``ready-<pid>`` once they would act on a SIGTERM."""


def accepting(directory: Path, workers: int) -> Callable[[], bool]:
    """Whether at least *workers* processes that touched ``ready-<pid>`` in *directory* (as each accepts) run now:
    every worker slot is up, none is waiting to be respawned."""

    def check() -> bool:
        return sum(alive(int(path.name.removeprefix("ready-"))) for path in directory.glob("ready-*")) >= workers

    return check
