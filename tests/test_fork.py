"""Fork safety: children start fresh, never stall the parent, and every process delivers its own records once."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import read_list, wait_until
from .servers import GUNICORN_READY_HOOKS, accepting, messages_once, named

pytestmark = pytest.mark.slow
MakeHandler = Callable[..., RedisHandler]


def run_script(tmp_path: Path, source: str, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run *source* as a script file (multiprocessing's spawn needs a real main module)."""
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, str(script), *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


_C_FORK = """
    import ctypes, logging, os, sys
    from redis_log_handler import RedisHandler

    url, key = sys.argv[1:3]
    handler = RedisHandler(url=url, key=key, mode="list")
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("parent before")
    assert handler.flush(10)
    pid = ctypes.PyDLL(None).fork()  # fork(2) from C: Python's at-fork hooks do not run
    if pid == 0:
        log.info("child")
        fresh = handler.stats()["accepted"] == 1
        os._exit(0 if handler.flush(10) and fresh else 7)
    _, status = os.waitpid(pid, 0)
    log.info("parent after")
    assert handler.flush(10)
    sys.exit(os.waitstatus_to_exitcode(status))
"""


_MULTIPROCESSING = """
    import logging, multiprocessing, os, sys
    from concurrent.futures import ProcessPoolExecutor
    from redis_log_handler import RedisHandler

    def app_logger(url, key):
        log = logging.getLogger("app")
        if not log.handlers:  # spawn: a fresh interpreter configures its own logging
            close_timeout = float(os.environ.get("CLOSE_TIMEOUT", "5"))
            log.addHandler(RedisHandler(url=url, key=key, mode="list", close_timeout=close_timeout))
            log.setLevel(logging.INFO)
        return log

    def child(url, key, index):
        log = app_logger(url, key)
        for number in range(200):
            log.info("child %d %d", index, number)
        # no flush, no close: the child's exit must deliver

    def task(url, key, number):
        app_logger(url, key).info("task %d", number)
        return os.getpid()

    if __name__ == "__main__":
        url, key, method = sys.argv[1:4]
        context = multiprocessing.get_context(method)
        log = app_logger(url, key)
        log.info("parent")
        processes = [context.Process(target=child, args=(url, key, index)) for index in range(3)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            workers = set(pool.map(task, [url] * 100, [key] * 100, range(100)))
        print(sorted(process.exitcode for process in processes), len(workers))
"""


class TestForkMethods:
    def test_fork_without_hooks_is_caught_by_the_pid_check(
        self, tmp_path: Path, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """A child forked from C (no at-fork hooks) notices its new pid on the first record and starts fresh."""
        result = run_script(tmp_path, _C_FORK, redis_server.url, key)
        assert result.returncode == 0, result.stderr
        documents = read_list(client, key)
        assert [document["message"] for document in documents] == ["parent before", "child", "parent after"]
        producers = [document["id"].rsplit("-", 1)[0] for document in documents]
        assert producers[0] == producers[2] != producers[1]

    @pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
    def test_multiprocessing_and_process_pool(
        self, tmp_path: Path, redis_server: EmbeddedRedis, client: redis.Redis, key: str, method: str
    ) -> None:
        """multiprocessing children and ProcessPoolExecutor workers deliver everything once, without closing."""
        result = run_script(tmp_path, _MULTIPROCESSING, redis_server.url, key, method)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[:3] == ["[0,", "0,", "0]"]
        received = messages_once(client, key)
        expected = ["parent"] + [f"child {i} {n}" for i in range(3) for n in range(200)]
        expected += [f"task {n}" for n in range(100)]
        assert received == collections.Counter(expected)
        assert named(result.stderr, key) == []
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
    def test_with_redis_down_every_process_names_what_it_could_not_write(
        self, tmp_path: Path, key: str, method: str
    ) -> None:
        """Redis down throughout (close_timeout 1 s): the parent, each child and each pool worker name at their exit
        the records they logged, 701 in all, although the children end with os._exit."""
        down = EmbeddedRedis()  # never started
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CLOSE_TIMEOUT", "1")
            result = run_script(tmp_path, _MULTIPROCESSING, down.url, key, method)
        assert result.returncode == 0, result.stderr
        lines = named(result.stderr, key)
        assert sum(line.not_written for line in lines) == 1 + 3 * 200 + 100, result.stderr[-3000:]
        assert all(line.written == 0 for line in lines)


_GUNICORN_APP = """
    import logging, os
    from redis_log_handler import RedisHandler

    log = logging.getLogger("app")
    log.addHandler(RedisHandler(url=os.environ["LOG_URL"], key=os.environ["LOG_KEY"], mode="list"))
    log.setLevel(logging.INFO)
    log.info("preloaded")  # in the master, before the workers are forked: its runtime is running

    def app(environ, start_response):
        log.info("request %s", environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
"""


_OS_EXIT = """
    import logging, os, sys
    from redis_log_handler import RedisHandler, flush_all

    url, key = sys.argv[1], sys.argv[2]
    # A round trip waits up to flush_interval for a full batch: these 500 records usually wait in memory
    # until a flush hurries them (without one, most runs lose them all).
    handlers = [RedisHandler(url=url, key=f"{key}:{n}", mode="list", flush_interval=30) for n in range(2)]
    log = logging.getLogger("app")
    log.setLevel(logging.INFO)
    for handler in handlers:
        log.addHandler(handler)
    for number in range(500):
        log.info("%d", number)
    print(flush_all(10), flush=True)
    os._exit(0)  # no atexit hook runs: only what flush_all waited for is in Redis
"""


class TestFlushAll:
    def test_a_process_ending_with_os_exit_keeps_what_it_flushed(
        self, tmp_path: Path, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """flush_all() before os._exit: every handler's 500 records arrive (os._exit skips the exit hook)."""
        result = run_script(tmp_path, _OS_EXIT, redis_server.url, key, "flush")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["True"]
        assert [client.llen(f"{key}:{n}") for n in range(2)] == [500, 500]

    def test_one_deadline_for_every_handler(self, own_server: EmbeddedRedis, key: str, logger: logging.Logger) -> None:
        """With the server frozen, flush_all(0.5) gives up after one shared deadline, not one per handler."""
        from redis_log_handler import flush_all  # noqa: PLC0415 - the public name, as users import it

        handlers = [RedisHandler(url=own_server.url, key=f"{key}:{n}", close_timeout=0.5) for n in range(4)]
        try:
            for handler in handlers:
                logger.addHandler(handler)
            logger.info("before")
            assert flush_all(10) is True
            own_server.pause()
            logger.info("frozen")
            started = time.monotonic()
            assert flush_all(0.5) is False
            waited = time.monotonic() - started
        finally:
            own_server.resume()
            for handler in handlers:
                handler.close()
        assert waited < 4 * 0.5  # four handlers in turn, each with its own 0.5 s, would take 2 s


class TestGunicorn:
    def test_preload_workers_deliver_their_own_records_once(
        self, tmp_path: Path, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """gunicorn --preload: the master's record arrives once, and each worker's requests once, at shutdown too.

        The SIGTERM waits until both workers have started (gunicorn loses one that comes while a worker boots,
        and its master then waits out its graceful timeout; see test_servers.serve_and_request)."""
        (tmp_path / "logapp.py").write_text(textwrap.dedent(_GUNICORN_APP))
        (tmp_path / "hooks.py").write_text(textwrap.dedent(GUNICORN_READY_HOOKS))
        port = _free_port()
        command = [sys.executable, "-m", "gunicorn", "-c", "hooks.py", "--preload", "-w", "2"]
        master = subprocess.Popen(
            [*command, "-b", f"127.0.0.1:{port}", "logapp:app"],
            cwd=tmp_path,
            env={**os.environ, "LOG_URL": redis_server.url, "LOG_KEY": key},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            workers = set()
            for number in range(60):
                body = wait_until(lambda number=number: _get(f"http://127.0.0.1:{port}/{number}"), timeout=30)
                workers.add(int(body))
            wait_until(accepting(tmp_path, 2), timeout=30)
            master.send_signal(signal.SIGTERM)
            _, stderr = master.communicate(timeout=30)
        finally:
            if master.poll() is None:
                master.kill()
                master.communicate()
        assert master.returncode == 0, stderr
        assert master.pid not in workers
        received = messages_once(client, key)
        assert received == collections.Counter(["preloaded"] + [f"request /{n}" for n in range(60)])
        assert "redis_log_handler" not in stderr


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a loopback test server
            return str(response.read().decode())
    except OSError:
        return None


class TestManyForks:
    def test_200_forks_while_4_threads_log(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """Fork 200 times while 4 threads log: every child exits 0 within a watchdog, each record arrives once.

        The threads log without pause for as long as the forks take. With ``overflow="block"`` they wait
        for the writer instead of outrunning it, so the outcome does not depend on how fast this machine
        is at the moment: this test is about forks, not a throughput race.
        """
        handler = make_handler(
            url=redis_server.url, key=key, mode="list", batch_size=100, overflow="block", block_timeout=60
        )
        logger.addHandler(handler)
        stop = threading.Event()
        logged = [0] * 4

        def keep_logging(thread: int) -> None:
            while not stop.is_set():
                logger.info("thread %d %d", thread, logged[thread])
                logged[thread] += 1

        threads = [threading.Thread(target=keep_logging, args=(thread,)) for thread in range(4)]
        for thread in threads:
            thread.start()
        stuck = []
        try:
            for child in range(200):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
                    pid = os.fork()
                if pid == 0:  # the child: only the forking thread exists; report through the exit code
                    code = 1
                    try:
                        logger.info("child %d", child)
                        code = 0 if handler.flush(10) and handler.stats()["written"] == 1 else 2
                    finally:
                        os._exit(code)
                if _wait_for_child(pid, timeout=20) != 0:
                    stuck.append(child)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert stuck == []
        assert handler.flush(60) is True
        received = messages_once(client, key)
        assert all(received[f"child {child}"] == 1 for child in range(200))
        expected = collections.Counter(f"thread {thread} {n}" for thread in range(4) for n in range(logged[thread]))
        assert received - collections.Counter(f"child {child}" for child in range(200)) == expected
        stats = handler.stats()
        assert stats["accepted"] == stats["written"] == sum(logged)
        assert stats["dropped"] == 0


def _wait_for_child(pid: int, timeout: float) -> int:
    """The child's exit code; a child still running after *timeout* seconds is killed and reported as -1."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)  # polling a child's exit status: there is no blocking wait with a timeout
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1
