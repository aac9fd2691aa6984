"""SIGTERM in processes uvicorn or hypercorn run: every handler closed before the signal ends the process, and
nothing changed anywhere else (``_writer/sigterm.py``; the real servers are in ``test_server_stops.py``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from redis_log_handler.testing import EmbeddedRedis

from .servers import named

pytestmark = pytest.mark.slow

_CHILD = textwrap.dedent(
    """
    import logging, os, signal, sys, threading, time
    url, key, setup = sys.argv[1], sys.argv[2], sys.argv[3]
    if setup != "plain":
        import uvicorn  # a process uvicorn could run
    if setup == "own-handler":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    from redis_log_handler import RedisHandler

    log = logging.getLogger("app")
    log.setLevel(logging.INFO)

    def start():
        log.addHandler(RedisHandler(url=url, key=key, mode="list", close_timeout=1.0))
        for number in range(10):
            log.info("%d", number)

    if setup == "thread":
        worker = threading.Thread(target=start)
        worker.start()
        worker.join()
    else:
        start()
    print(signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # SIGTERM ends the process first
    """
)


def run(url: str, key: str, setup: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """The child above, ended by the SIGTERM it sends itself; run in *directory*, so that it imports the package
    the tests import (a copy ``.ci/mutants.py`` broke, say), not the project's from its working directory."""
    return subprocess.run(
        [sys.executable, "-c", _CHILD, url, key, setup],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestSigterm:
    def test_where_neither_server_runs_sigterm_is_left_as_it_was(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str
    ) -> None:
        """Without uvicorn or hypercorn, SIGTERM keeps Python's default: it ends the process on the spot."""
        own_server.kill()
        result = run(own_server.url, key, "plain", tmp_path)
        assert result.stdout.split() == ["True"]
        assert result.returncode == -signal.SIGTERM
        assert named(result.stderr, key) == []  # nothing could say so: the default action runs no exit hook

    @pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-down"])
    def test_where_uvicorn_could_run_sigterm_closes_every_handler_then_ends_the_process(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, redis_up: bool
    ) -> None:
        """With uvicorn imported and SIGTERM at Python's default, a SIGTERM still ends the process by that
        signal, but only once the handler has written its 10 records (Redis up) or named them (down)."""
        if not redis_up:
            own_server.kill()
        result = run(own_server.url, key, "uvicorn", tmp_path)
        assert result.stdout.split() == ["False"]  # the handler put its own in the default's place
        assert result.returncode == -signal.SIGTERM
        if not redis_up:
            own_server.start()
        written = redis.Redis.from_url(own_server.url).llen(key)
        not_written = sum(line.not_written for line in named(result.stderr, key))
        assert (written, not_written) == ((10, 0) if redis_up else (0, 10)), result.stderr

    def test_an_applications_own_sigterm_handler_is_left_alone(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str
    ) -> None:
        """With uvicorn imported, a SIGTERM handler the application set is kept (it exits through the exit hook,
        which writes the records)."""
        result = run(own_server.url, key, "own-handler", tmp_path)
        assert result.stdout.split() == ["False"]
        assert result.returncode == 3, result.stderr
        assert redis.Redis.from_url(own_server.url).llen(key) == 10

    def test_used_only_off_the_main_thread_it_says_what_to_do(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str
    ) -> None:
        """Created and first used on another thread, the handler cannot set a signal handler: it says once what
        finishes the job, and SIGTERM keeps its default."""
        result = run(own_server.url, key, "thread", tmp_path)
        assert result.stdout.split() == ["True"]
        assert result.returncode == -signal.SIGTERM
        assert result.stderr.count("records still buffered at a stop would be lost") == 1, result.stderr
        assert "flush_all() at the end of the application's lifespan shutdown" in result.stderr
