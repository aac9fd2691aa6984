"""Fault injection against real redis-server processes: every accepted record is in Redis or counted as dropped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis

from .helpers import Freeze, read_list, read_stream, wait_until

pytestmark = pytest.mark.slow
MakeHandler = Callable[..., RedisHandler]
# The stalls below last longer than this; a logging call that waited on Redis would have waited for one.
# They show that no call did by finishing their logging while the stall still holds.
STALL_SECONDS = 3.0


def assert_accounted(handler: RedisHandler, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """accepted == unique records in Redis + dropped, and every duplicate is explained by an unknown outcome."""
    stats = handler.stats()
    unique = {document["id"] for document in documents}
    assert stats["buffered"] == 0
    assert stats["accepted"] == len(unique) + stats["dropped"], stats
    assert len(documents) - len(unique) <= stats["retries_unknown_outcome"], stats
    return stats


def log_numbers(logger: logging.Logger, count: int, during: Callable[[], None] | None = None, start: int = 0) -> None:
    """Log *count* records numbered from *start*, calling *during* halfway."""
    for number in range(start, start + count):
        if during is not None and number == start + count // 2:
            during()
        logger.info("%d", number)


def warm_handler(make_handler: MakeHandler, logger: logging.Logger, **kwargs: Any) -> RedisHandler:
    """A handler on *logger* that has already written 100 numbered records (connection made, counters busy)."""
    handler = make_handler(**kwargs)
    logger.addHandler(handler)
    log_numbers(logger, 100)
    assert handler.flush(10)
    return handler


@pytest.fixture
def debug_server() -> Iterator[EmbeddedRedis]:
    """A server that accepts DEBUG from loopback clients."""
    with EmbeddedRedis("--enable-debug-command", "local") as server:
        yield server


@pytest.fixture
def sync_client(debug_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A plain client on debug_server."""
    connection = redis.Redis.from_url(debug_server.url)
    yield connection
    connection.close()


class TestServerDeath:
    @pytest.mark.parametrize("persistence", ["aof", "none"])
    def test_kill_and_restart(
        self, key: str, persistence: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """kill -9 mid-stream and restart: what the server kept plus everything logged afterwards is there."""
        arguments = ("--appendonly", "yes", "--appendfsync", "always") if persistence == "aof" else ()
        server = EmbeddedRedis(*arguments).start()
        try:
            handler = make_handler(url=server.url, key=key, socket_timeout=0.5)
            logger.addHandler(handler)
            log_numbers(logger, 2000)
            server.kill()
            log_numbers(logger, 2000, start=2000)
            server.start()
            assert handler.flush(20) is True
            client = redis.Redis.from_url(server.url)
            documents = read_stream(client, key)
            client.close()
            stats = handler.stats()
            assert stats["dropped"] == 0
            assert stats["written"] == 4000
            numbers = sorted({int(document["message"]) for document in documents})
            if persistence == "aof":
                # Every acknowledged write was fsynced: nothing is missing.
                assert len({document["id"] for document in documents}) == 4000
                assert numbers == list(range(4000))
            else:
                # Without persistence the server forgets what it had acknowledged before the kill;
                # what it received afterwards (the second 2000) is all there.
                assert set(range(2000, 4000)) <= set(numbers)
        finally:
            server.stop()


class TestStalls:
    def test_frozen_past_socket_timeout_counts_unknown_outcomes(
        self, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """SIGSTOP longer than socket_timeout: the write's outcome is unknown, it is retried and counted."""
        handler = warm_handler(make_handler, logger, url=own_server.url, key=key, socket_timeout=0.3, batch_size=100)
        with Freeze(own_server, STALL_SECONDS) as freeze:
            log_numbers(logger, 1000)
            assert not freeze.over
            # The write in flight times out after socket_timeout, while the server is still frozen.
            wait_until(lambda: handler.stats()["retries_unknown_outcome"] > 0 or freeze.over, timeout=10)
        assert handler.flush(20) is True
        client = redis.Redis.from_url(own_server.url)
        documents = read_stream(client, key)
        client.close()
        stats = assert_accounted(handler, documents)
        assert stats["retries_unknown_outcome"] >= 1
        assert stats["dropped"] == 0
        assert stats["connected"] is True
        assert sorted({int(document["message"]) for document in documents[100:]}) == list(range(1000))

    def test_debug_sleep_past_socket_timeout(
        self,
        debug_server: EmbeddedRedis,
        sync_client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """DEBUG SLEEP blocks the server past socket_timeout; the handler retries and nothing is lost."""
        handler = warm_handler(
            make_handler, logger, url=debug_server.url, key=key, mode="list", socket_timeout=0.3, batch_size=100
        )
        sleeper = threading.Thread(target=sync_client.execute_command, args=("DEBUG", "SLEEP", str(STALL_SECONDS)))
        sleeper.start()
        # The server sleeps once a PING goes unanswered for a second (an awake one answers within milliseconds,
        # even on a loaded machine); the sleep lasts STALL_SECONDS, and the burst below takes a fraction of one.
        wait_until(lambda: not debug_server.ping(timeout=1.0))
        log_numbers(logger, 2000)
        assert sleeper.is_alive()  # the server still sleeps: no call waited on it
        sleeper.join()
        assert handler.flush(20) is True
        documents = read_list(sync_client, key)
        stats = assert_accounted(handler, documents)
        assert stats["dropped"] == 0

    def test_client_pause_write(
        self,
        debug_server: EmbeddedRedis,
        sync_client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """CLIENT PAUSE WRITE holds the handler's writes; they land, once and in order, after the pause."""
        handler = warm_handler(make_handler, logger, url=debug_server.url, key=key, batch_size=100)
        sync_client.execute_command("CLIENT", "PAUSE", int(STALL_SECONDS * 1000), "WRITE")
        log_numbers(logger, 2000)
        assert handler.stats()["written"] == 100  # the pause still holds every write: no call waited for one
        assert handler.flush(20) is True
        documents = read_stream(sync_client, key)
        assert_accounted(handler, documents)
        assert [int(document["message"]) for document in documents] == list(range(100)) + list(range(2000))

    def test_client_kill_mid_stream(
        self,
        debug_server: EmbeddedRedis,
        sync_client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """CLIENT KILL of the handler's connection while it writes: it reconnects and every record arrives."""
        handler = make_handler(url=debug_server.url, key=key, batch_size=200)
        logger.addHandler(handler)
        kills = []

        def kill_handler_connections() -> None:
            kills.append(sync_client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))

        log_numbers(logger, 20_000, during=kill_handler_connections)
        assert handler.flush(20) is True
        assert kills == [1]
        documents = read_stream(sync_client, key)
        stats = assert_accounted(handler, documents)
        assert stats["dropped"] == 0
        assert sorted({int(document["message"]) for document in documents}) == list(range(20_000))


class TestRefusals:
    def test_no_write_permission_drops_reports_once_and_recovers(
        self,
        debug_server: EmbeddedRedis,
        sync_client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An ACL user without write permission: batches are dropped (NOPERM), reported once; a grant fixes it."""
        sync_client.execute_command("ACL", "SETUSER", "logger", "on", ">secret", "~*", "+@all", "-@write")
        url = debug_server.url.replace("redis://", "redis://logger:secret@")
        handler = make_handler(url=url, key=key, batch_size=10)
        logger.addHandler(handler)
        for _ in range(3):
            for number in range(10):
                logger.info("refused %d", number)
            assert handler.flush(5) is False
        stats = handler.stats()
        assert stats["dropped_error"] == 30
        assert stats["retries"] == 0
        assert stats["last_error"].startswith(("ResponseError", "NoPermissionError"))
        assert stats["last_error_at"] > time.time() - 60
        assert capsys.readouterr().err.count("refused") == 1  # the rate limit folds the other two into a count
        sync_client.execute_command("ACL", "SETUSER", "logger", "+@all")
        logger.info("granted")
        assert handler.flush(5) is True
        assert [document["message"] for document in read_stream(sync_client, key)] == ["granted"]
        assert_accounted(handler, read_stream(sync_client, key))
