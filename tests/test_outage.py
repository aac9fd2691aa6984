"""Redis outages and process exit: nothing accepted is lost while the buffer has room, and exit is bounded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler._shared.retry import BACKOFF_BASE, BACKOFF_CAP
from redis_log_handler._writer import drain as _drain
from redis_log_handler._writer.transport import batch_writer as _batch_writer
from redis_log_handler.testing import EmbeddedRedis

from .helpers import Freeze, read_list, read_stream, wait_until
from .servers import named

pytestmark = pytest.mark.slow
MakeHandler = Callable[..., RedisHandler]


class TestRestart:
    @pytest.mark.parametrize("mode", ["stream", "list"])
    def test_records_logged_while_down_survive_a_restart(
        self, own_server: EmbeddedRedis, key: str, mode: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """Kill the server mid-stream, log, restart it on the same port: every record arrives, none twice."""
        handler = make_handler(url=own_server.url, key=key, mode=mode)
        logger.addHandler(handler)
        for number in range(500):
            logger.info("before %d", number)
        assert handler.flush(10)

        own_server.kill()
        for number in range(3000):
            logger.info("during %d", number)
        assert handler.flush(0.2) is False

        own_server.start()  # same port; AOF brings back what was written before the kill
        assert handler.flush(20) is True
        connection = redis.Redis.from_url(own_server.url)
        documents = read_stream(connection, key) if mode == "stream" else read_list(connection, key)
        messages = [document["message"] for document in documents]
        assert messages == [f"before {n}" for n in range(500)] + [f"during {n}" for n in range(3000)]
        assert len({document["id"] for document in documents}) == 3500
        stats = handler.stats()
        assert stats["written"] == stats["accepted"] == 3500
        assert stats["dropped"] == 0
        assert stats["retries"] >= 1
        connection.close()

    def test_emit_does_not_wait_while_redis_is_frozen(
        self, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """With the server frozen (SIGSTOP), 2,000 logging calls end before it thaws, and delivery resumes."""
        handler = make_handler(url=own_server.url, key=key, mode="list", batch_size=100)
        logger.addHandler(handler)
        logger.info("warm")
        assert handler.flush(10)
        with Freeze(own_server) as freeze:
            for number in range(2000):
                logger.info("%d", number)
            assert not freeze.over  # a call that waited on Redis would have waited for the thaw
        assert handler.flush(30) is True
        delivered = read_list(redis.Redis.from_url(own_server.url), key)
        numbers = [int(document["message"]) for document in delivered[1:]]
        # A batch whose reply was lost may be written again (at-least-once); ids tell duplicates apart.
        assert sorted(set(numbers)) == list(range(2000))
        assert len({document["id"] for document in delivered}) == 2001

    def test_no_stepping_aside_while_redis_is_frozen(
        self,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        step_aside_decisions: list[bool],
    ) -> None:
        """Past the high-water mark a logging call steps aside for the writer, but never for one waiting on Redis."""
        decisions = step_aside_decisions
        handler = make_handler(url=own_server.url, key=key, mode="list", buffer_size=1000, socket_timeout=30)
        logger.addHandler(handler)
        logger.info("warm")
        assert handler.flush(10)
        own_server.pause()
        try:
            logger.info("sent into the freeze")
            assert handler.flush(0.1) is False  # a flush makes the writer send the partial batch now
            intake, delivery = handler._shipper.intake, handler._shipper._delivery
            # The writer has sent and waits for a reply the frozen server will not give.
            wait_until(lambda: intake.writer_waits == delivery.can_resume and not delivery.can_resume())
            for number in range(3000):  # three buffers: past the high-water mark, and full
                logger.info("%d", number)
        finally:
            own_server.resume()
        assert len(decisions) > 1000
        assert not any(decisions)
        # Frozen Redis: the overflow policy dropped records instead of making the callers wait.
        assert handler.flush(30) is False  # what it dropped makes the flush report a loss
        wait_until(lambda: handler.stats()["buffered"] == 0, timeout=30)
        stats = handler.stats()
        assert stats["dropped_overflow"] > 0
        assert stats["accepted"] == stats["written"] + stats["dropped"]

    def test_no_stepping_aside_while_connecting_to_a_frozen_redis(
        self,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        step_aside_decisions: list[bool],
    ) -> None:
        """A first connection that hangs on a frozen server is a wait on Redis: no logging call steps aside."""
        decisions = step_aside_decisions
        own_server.pause()
        try:
            handler = make_handler(
                url=own_server.url, key=key, mode="list", buffer_size=2000, batch_size=2000, socket_timeout=30
            )
            logger.addHandler(handler)
            logger.info("starts the writer, which connects")
            intake, delivery = handler._shipper.intake, handler._shipper._delivery
            wait_until(
                lambda: (
                    delivery._transport is not None
                    and delivery._transport._waiting == _batch_writer._CONNECTING
                    and intake.writer_waits is not None
                    and not intake.writer_waits()
                )
            )
            # Past the high-water mark (1000), below a batch (2000): no wake-up for the loop to handle either.
            for number in range(1500):
                logger.info("%d", number)
        finally:
            own_server.resume()
        assert len(decisions) == 502  # backlog 1000 to 1501
        assert not any(decisions)
        assert handler.flush(30) is True


_CHILD = textwrap.dedent(
    """
    import logging, os, signal, sys, time
    from redis_log_handler import RedisHandler
    from redis_log_handler._writer import intake as _intake

    url, key, count, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    handler = RedisHandler(url=url, key=key, mode="list", close_timeout=float(os.environ.get("CLOSE_TIMEOUT", "5")))
    log = logging.getLogger("child")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    if how == "sigterm":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for number in range(count):
        log.info("%d", number)
    print(time.monotonic(), flush=True)  # CLOCK_MONOTONIC is system-wide: the parent times the exit from here
    if how == "sys.exit":
        sys.exit(3)
    if how == "raise":
        raise RuntimeError("uncaught")
    if how == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    """
)

_EXIT_CODES = {"return": 0, "sys.exit": 3, "raise": 1, "sigterm": 0}


def _run_child(url: str, key: str, count: int, how: str, close_timeout: float = 5.0) -> tuple[float, str, int]:
    """Run the child; returns how long its exit took (from its last record), its stderr and its exit code."""
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _CHILD, url, key, str(count), how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CLOSE_TIMEOUT": str(close_timeout)},
    )
    ended = time.monotonic()
    assert result.stdout.strip(), f"the child never reached its last record: {result.stderr}"
    return ended - float(result.stdout.split()[0]), result.stderr, result.returncode


_INTERRUPTED_CHILD = textwrap.dedent(
    """
    import logging, os, signal, sys, threading, time
    from redis_log_handler import RedisHandler

    url, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    handler = RedisHandler(url=url, key=key, mode="list", close_timeout=5.0)
    log = logging.getLogger("child")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def stop(*_):  # SIGTERM ends the process through its exit hooks
        print("stopping", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    for number in range(count):
        log.info("%d", number)

    def second_sigterm():  # a server's second SIGTERM, once the exit hook is closing the handler
        while not handler._shipper.closed:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=second_sigterm, daemon=True).start()
    sys.exit(0)
    """
)


class TestDeadline:
    @pytest.mark.parametrize("waiter", ["flush", "close"])
    def test_redis_back_before_the_deadline_is_written_to_within_a_hurried_retry(
        self,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        monkeypatch: pytest.MonkeyPatch,
        waiter: str,
    ) -> None:
        """Redis down long enough for the retry backoff to grow past the 3 s deadline of a flush or close, then
        back while it waits: the record is written before the deadline, because a retry is never more than
        HURRIED_RETRY away while a flush or close waits (the backoff's jitter is pinned at its largest here,
        so a backoff alone would sleep through the deadline)."""
        monkeypatch.setattr(_drain, "retry_delay", lambda failures: min(BACKOFF_CAP, BACKOFF_BASE * 2**failures))
        handler = make_handler(url=own_server.url, key=key, mode="list", close_timeout=3.0)
        logger.addHandler(handler)
        own_server.kill()
        logger.info("logged while down")
        wait_until(lambda: handler.stats()["retries"] >= 6, timeout=30)  # the next backoff is 3.2 s, then 5 s
        retries = handler.stats()["retries"]
        outcome: list[bool] = []
        waiting = threading.Thread(
            target=lambda: outcome.append(handler.flush(3.0) if waiter == "flush" else handler.close() is None)
        )
        waiting.start()
        wait_until(lambda: handler.stats()["retries"] > retries, timeout=5)  # a retry since the wait began failed
        own_server.start()
        waiting.join()
        assert outcome == [True]
        assert handler.stats()["written"] == 1
        assert redis.Redis.from_url(own_server.url).llen(key) == 1


class TestExit:
    @pytest.mark.parametrize("how", list(_EXIT_CODES))
    def test_exit_without_close_delivers_everything(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, how: str
    ) -> None:
        """A process that logs N records and exits (four ways) without calling close delivers all N."""
        elapsed, stderr, code = _run_child(redis_server.url, key, 5000, how)
        assert code == _EXIT_CODES[how], stderr
        assert elapsed <= 5.0 + 1.0  # close_timeout + 1 s
        assert [int(document["message"]) for document in read_list(client, key)] == list(range(5000))
        assert "Exception ignored" not in stderr
        assert "Task was destroyed" not in stderr
        assert "redis_log_handler" not in stderr

    def test_exit_with_host_name_url(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """Exit delivers through a host name too (the connection is made early, not from the exit hook)."""
        url = redis_server.url.replace("127.0.0.1", "localhost")
        _, stderr, code = _run_child(url, key, 100, "return")
        assert code == 0, stderr
        assert client.llen(key) == 100

    @pytest.mark.parametrize("how", list(_EXIT_CODES))
    def test_exit_is_bounded_when_redis_is_frozen(self, own_server: EmbeddedRedis, key: str, how: str) -> None:
        """With Redis frozen, exit (four ways) takes at most close_timeout + 1 s and counts what was not sent."""
        own_server.pause()
        try:
            elapsed, stderr, code = _run_child(own_server.url, key, 1000, how, close_timeout=1.0)
        finally:
            own_server.resume()
        assert code == _EXIT_CODES[how], stderr
        assert elapsed <= 1.0 + 1.0
        assert "1000 records" in stderr
        assert "were not written before close_timeout" in stderr
        assert stderr.count("Traceback") == (1 if how == "raise" else 0)  # only the application's own
        assert "Exception ignored" not in stderr

    @pytest.mark.parametrize("redis_back", [True, False])
    def test_an_exit_interrupted_by_a_second_sigterm_still_writes_or_names_every_record(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, redis_back: bool
    ) -> None:
        """Redis down at exit, and a SIGTERM whose handler raises SystemExit while the exit hook closes the handler:
        the close goes on (logging.shutdown's close() waits for it), so Redis started again then gets all 300
        records, and a Redis still down past close_timeout has all 300 named."""
        own_server.kill()
        child = subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTED_CHILD, own_server.url, key, "300"],
            cwd=tmp_path,  # it imports the package the tests import, not the project's from its working directory
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "stopping\n"  # the second SIGTERM interrupted the exit hook
        if redis_back:
            own_server.start()
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr
        if not redis_back:
            own_server.start()
        written = redis.Redis.from_url(own_server.url).llen(key)
        assert (written, sum(line.not_written for line in named(stderr, key))) == ((300, 0) if redis_back else (0, 300))

    def test_exit_is_bounded_when_redis_is_down(self, key: str) -> None:
        """With nothing listening on the port, exit is bounded by close_timeout as well."""
        server = EmbeddedRedis()  # never started
        elapsed, stderr, code = _run_child(server.url, key, 10, "return", close_timeout=0.5)
        assert code == 0
        assert elapsed <= 0.5 + 1.0
        assert "10 records" in stderr


class TestFork:
    def test_child_starts_fresh_and_parent_keeps_its_records(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """After fork the child has an empty buffer and its own runtime; the parent alone sends what it buffered."""
        # A long flush_interval keeps the parent's records in its buffer across the fork.
        handler = make_handler(url=redis_server.url, key=key, mode="list", flush_interval=30.0)
        logger.addHandler(handler)
        logger.info("warm-up")
        assert handler.flush(10)
        for number in range(10):
            logger.info("parent %d", number)
        assert handler.stats()["buffered"] == 10
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a multi-threaded process
            pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                fresh = handler.stats()["accepted"] == 0
                logger.info("child")
                delivered = handler.flush(10)
                code = 0 if fresh and delivered and handler.stats()["written"] == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert handler.flush(10)
        messages = [document["message"] for document in read_list(client, key)]
        assert sorted(messages) == sorted(["warm-up", "child"] + [f"parent {n}" for n in range(10)])
        producers = {document["id"].rsplit("-", 1)[0] for document in read_list(client, key)}
        assert len(producers) == 2
