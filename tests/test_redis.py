"""Error classification, and what the handler does with server errors (real redis-server)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import fakeredis
import pytest
import redis
import redis.exceptions

from redis_log_handler import RedisHandler
from redis_log_handler._shared.retry import Outcome, classify, transient
from redis_log_handler._writer.settings import WriterSettings
from redis_log_handler._writer.transport import batch_writer as _batch_writer
from redis_log_handler._writer.transport.batch_commands import _STREAM_SCRIPT
from redis_log_handler._writer.transport.batch_writer import BatchWriter, create_client
from redis_log_handler._writer.transport.info import supports_idempotent_xadd
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream

MakeHandler = Callable[..., RedisHandler]


class TestClassify:
    @pytest.mark.parametrize(
        "error",
        [
            redis.exceptions.ConnectionError("connection refused"),
            redis.exceptions.TimeoutError("timeout reading"),
            redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
            redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
            redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
            redis.exceptions.ResponseError("BUSY Redis is busy running a script"),
            redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
            OSError("network is unreachable"),
        ],
    )
    def test_transient_errors_are_retried(self, error: Exception) -> None:
        """Connection trouble, timeouts and transient server replies keep the batch for a retry."""
        assert classify(error) is Outcome.RETRY

    @pytest.mark.parametrize(
        "error",
        [
            redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            redis.exceptions.NoPermissionError("this user has no permissions to run the 'eval' command"),
            redis.exceptions.AuthenticationError("invalid username-password pair"),
            redis.exceptions.ResponseError("Error running script: syntax error"),
        ],
    )
    def test_configuration_errors_drop_the_batch(self, error: Exception) -> None:
        """Replies that retrying cannot change drop the batch (counted) instead of blocking the handler."""
        assert classify(error) is Outcome.DROP

    def test_the_reader_rides_out_what_the_writer_retries_from_the_same_table(self) -> None:
        """One table for both sides: what passes (a lost connection, a loading or read-only server, a slot that
        moved, a read unblocked by a slot migration) the consumer retries; a refusal or an unknown error reply
        it raises."""
        passing = [
            redis.exceptions.ConnectionError("connection refused"),
            redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
            redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
            redis.exceptions.MovedError("3999 127.0.0.1:6381"),
            redis.exceptions.ResponseError("UNBLOCKED the stream key was moved"),
        ]
        failing = [
            redis.exceptions.AuthenticationError("invalid username-password pair"),
            redis.exceptions.NoPermissionError("this user has no permissions to run the 'xreadgroup' command"),
            redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ]
        assert [transient(error) for error in passing] == [True] * len(passing)
        assert [transient(error) for error in failing] == [False] * len(failing)
        assert all(classify(error) is Outcome.RETRY for error in passing)


class TestIdempotentWrites:
    def test_support_is_read_from_the_server_version(self, client: redis.Redis) -> None:
        """Redis 8.6+ has idempotent XADD; older Redis and Valkey (whatever redis_version it reports) do not."""
        connection = client.connection_pool.get_connection()
        connection.send_command("INFO", "server")
        assert supports_idempotent_xadd(connection.read_response()) is False  # the local 7.x or Valkey
        client.connection_pool.release(connection)
        assert supports_idempotent_xadd(b"# Server\r\nredis_version:8.6.0\r\nredis_mode:standalone\r\n") is True
        assert supports_idempotent_xadd("redis_version:10.0.1\r\n") is True
        assert supports_idempotent_xadd("redis_version:8.4.2\r\n") is False
        assert supports_idempotent_xadd("redis_version:8.6.0\r\nserver_name:valkey\r\nvalkey_version:9.1\r\n") is False
        assert supports_idempotent_xadd("garbage") is False

    def test_every_connection_is_asked_its_version(
        self, redis_server: EmbeddedRedis, key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The first connection (which the pool hands out connected) is asked, and so is each reconnection."""
        asked: list[bytes] = []
        monkeypatch.setattr(_batch_writer, "supports_idempotent_xadd", lambda info: asked.append(info) or True)
        settings = WriterSettings.build(url=redis_server.url, key=key)
        writer = BatchWriter(create_client(settings), settings, key, loop_could_run=lambda: True)

        async def connect_twice() -> tuple[bool, bool]:
            await writer.prepare()
            first = writer.idempotent and writer.can_resume()
            await writer._connection.disconnect()
            await writer.prepare()
            await writer.close()
            return first, writer.idempotent

        assert asyncio.run(connect_twice()) == (True, True)
        assert len(asked) == 2

    def test_a_resent_batch_is_written_once(self) -> None:
        """With IDMP the stream script recognises a batch it already wrote and skips it whole (fakeredis 8.6 + Lua)."""
        server = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(8, 6)))
        first = [f'{{"id":"producer-{n}","message":"{n}"}}' for n in range(5)]
        second = [f'{{"id":"producer-{n}","message":"{n}"}}' for n in range(5, 8)]
        assert server.eval(_STREAM_SCRIPT, 1, "logs", "", "", "1", *first) == 1
        assert server.eval(_STREAM_SCRIPT, 1, "logs", "", "", "1", *first) == 0  # the reply was lost: re-sent
        assert server.eval(_STREAM_SCRIPT, 1, "logs", "", "", "1", *second) == 1
        assert [fields[b"data"].decode() for _, fields in server.xrange("logs")] == first + second


@pytest.mark.slow
class TestServerErrors:
    def test_out_of_memory_is_retried_until_memory_is_raised(
        self, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """At maxmemory with noeviction, batches wait and retry; once maxmemory is raised they all arrive."""
        with EmbeddedRedis("--maxmemory", "2mb", "--maxmemory-policy", "noeviction") as server:
            client = redis.Redis.from_url(server.url)
            filler = 0
            while True:  # fill the server up to its limit
                try:
                    client.set(f"filler:{filler}", b"x" * 50_000)
                except redis.exceptions.OutOfMemoryError:
                    break
                filler += 1
            handler = make_handler(url=server.url, key=key, batch_size=50)
            logger.addHandler(handler)
            for number in range(200):
                logger.info("%d", number)
            assert handler.flush(1.0) is False
            assert handler.stats()["retries"] >= 1
            client.config_set("maxmemory", "0")
            assert handler.flush(20) is True
            # Each refused batch is retried; a later batch of the same round trip may have been accepted
            # first (Valkey frees memory between scripts), so only the set is certain, not the order.
            assert sorted(int(document["message"]) for document in read_stream(client, key)) == list(range(200))
            stats = handler.stats()
            assert stats["written"] == 200
            assert stats["dropped"] == 0
            client.close()

    def test_wrong_key_type_drops_counts_and_keeps_going(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """WRONGTYPE drops the batch as dropped_error, says so once, and later batches go through."""
        client.set(key, "not a stream")
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for number in range(10):
            logger.info("%d", number)
        assert handler.flush(5) is False
        stats = handler.stats()
        assert stats["dropped_error"] == 10
        assert stats["retries"] == 0
        err = capsys.readouterr().err
        assert err.count("WRONGTYPE") == 1
        assert "dropped_error" in err
        client.delete(key)
        logger.info("after the fix")
        assert handler.flush(5) is True
        assert [document["message"] for document in read_stream(client, key)] == ["after the fix"]
