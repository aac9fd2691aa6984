"""The README's snippets and commands, run in order as a newcomer runs them, against a server of the test's own.

The snippets name ``redis://localhost:6379/0``; here that address is replaced by the test server's, and the
commands, which take no ``--url``, reach it through ``$REDIS_URL`` as the README says they do.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import redis

from redis_log_handler.testing import EmbeddedRedis

from .helpers import paste, read_list, read_stream, shell_environment, wait_until

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"```(python|sh)\n(.*?)```", re.DOTALL)


def usage_blocks() -> list[tuple[str, str]]:
    """The README's usage section, from the stdlib snippet to the consumer's, as (language, text) pairs."""
    text = README.read_text()
    start = text.index("**stdlib `logging`**")
    end = text.index("## What it does")
    return [(match[1], match[2]) for match in _BLOCK.finditer(text[start:end])]


def run_python(program: str, server: EmbeddedRedis) -> subprocess.CompletedProcess[str]:
    """*program* in a fresh interpreter, with the README's Redis address replaced by *server*'s."""
    return subprocess.run(
        [sys.executable, "-c", program.replace("redis://localhost:6379/0", server.url)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": server.url},
        check=False,
    )


def test_each_snippet_runs_on_its_own(own_server: EmbeddedRedis) -> None:
    """A reader may copy any one snippet: each runs alone, without a name from another."""
    for language, text in usage_blocks():
        if language == "python" and ".records()" not in text:
            ran = run_python(text, own_server)
            assert ran.returncode == 0, f"{text}\n{ran.stderr}"


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the test's own loopback page
            return str(response.read().decode())
    except OSError:
        return None


def test_snippets_and_commands_work_in_order(tmp_path: Path, own_server: EmbeddedRedis) -> None:
    """Every Python snippet runs (one after the other, as one program), nothing is dropped, and the commands
    the README prints then show, re-emit and report those records."""
    blocks = usage_blocks()
    python = [text for language, text in blocks if language == "python" and ".records()" not in text]
    commands = [line for language, text in blocks if language == "sh" for line in text.splitlines()]
    assert len(python) == 4, blocks  # stdlib, Loguru, structlog, dictConfig
    assert len(commands) == 5, blocks
    program = "\n".join(python) + "\nimport logging\nlogging.getLogger('app').warning('after dictConfig')\n"
    environment = {**os.environ, "REDIS_URL": own_server.url, "NO_COLOR": "1"}
    ran = run_python(program, own_server)
    assert ran.returncode == 0, ran.stderr
    assert "redis_log_handler[" not in ran.stderr, ran.stderr  # no diagnostic: nothing dropped, no WRONGTYPE
    client = redis.Redis.from_url(own_server.url)
    stream = read_stream(client, "app:logs")
    assert {document["source"] for document in stream} == {"stdlib", "loguru", "structlog"}
    assert [document["message"] for document in read_list(client, "app:logs:list")] == ["after dictConfig"]

    arguments = [shlex.split(line.split("#", 1)[0]) for line in commands]
    tail, tail_list, consume, status, web = arguments
    assert tail[:2] == tail_list[:2] == ["redis-log-handler", "tail"]
    shown = subprocess.run(
        [sys.executable, "-m", "redis_log_handler", *tail_list[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip().endswith("app: after dictConfig"), shown.stdout  # the list, read as a list
    assert "-f" in tail
    follow = subprocess.Popen(
        [sys.executable, "-m", "redis_log_handler", *tail[1:]], stdout=subprocess.PIPE, text=True, env=environment
    )
    try:
        assert follow.stdout is not None
        assert "disk /var is 91% full" in follow.stdout.readline()  # the stdlib snippet's warning
    finally:
        follow.terminate()
        follow.wait(timeout=10)

    consumer = subprocess.Popen(
        [sys.executable, "-m", "redis_log_handler", *consume[1:]],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    consumed: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [consumed.put(line) for line in consumer.stdout or ()], daemon=True).start()
    try:
        line = ""
        while not line.rstrip().endswith("app: disk /var is 91% full"):  # the stdlib snippet's record, on stdout
            line = consumed.get(timeout=30)
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=30) == 0

    shown = subprocess.run(
        [sys.executable, "-m", "redis_log_handler", *status[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr

    page = subprocess.Popen(
        [sys.executable, "-m", "redis_log_handler", *web[1:]], stderr=subprocess.PIPE, text=True, env=environment
    )
    try:
        assert page.stderr is not None
        address = page.stderr.readline().split(" on ")[-1].split()[0]  # ... on http://127.0.0.1:8765/ (Ctrl-C ...)
        body = wait_until(lambda: _get(f"{address}api/older?level=warning"))
        assert "disk /var is 91% full" in body
    finally:
        page.send_signal(signal.SIGTERM)
        assert page.wait(timeout=30) == 0


def test_the_demo_and_the_next_steps_it_prints() -> None:
    """The README's demo command, the next step the demo prints (demo --keep), and the tail command that one
    prints, each pasted into a shell where the README's commands run (the virtual environment not activated):
    each exits 0 and shows the records."""
    first = _BLOCK.findall(README.read_text())[0][1]
    demo = first.strip().split(" && ")[-1]
    assert demo == ".venv/bin/redis-log-handler demo"
    ran = paste(demo.replace(".venv/bin/", f"{Path(sys.executable).parent}/", 1))  # this environment's script
    assert ran.returncode == 0, ran.stderr
    assert "everything delivered  : yes" in ran.stdout
    (keep,) = re.findall(r"Run '([^']+ demo --keep)'", ran.stdout)
    kept = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {keep}"], stdout=subprocess.PIPE, text=True, env=shell_environment()
    )
    assert kept.stdout is not None
    printed = ""
    try:
        while "In another terminal:" not in printed:
            line = kept.stdout.readline()
            assert line, printed
            printed += line
        tail = kept.stdout.readline().strip()
        assert tail.endswith(" -f"), tail
        shown = paste(tail.removesuffix(" -f"))
        assert shown.returncode == 0, shown.stderr
        assert len(shown.stdout.splitlines()) >= 20
    finally:
        kept.send_signal(signal.SIGINT)
        assert kept.wait(timeout=30) == 0
