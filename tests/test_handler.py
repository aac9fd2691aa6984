"""RedisHandler against a real redis-server: modes, options, concurrency, overflow, flush and close."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from redis_log_handler import RedisHandler
from redis_log_handler._writer.runtime import get_runtime
from redis_log_handler._writer.settings import WriterSettings
from redis_log_handler._writer.trip import trip_sizes
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_list, read_stream, wait_until

MakeHandler = Callable[..., RedisHandler]


def assert_balanced(stats: dict[str, int]) -> None:
    """Every accepted record is written, dropped, or still buffered (three counters kept by different threads)."""
    assert stats["accepted"] == stats["written"] + stats["dropped"] + stats["buffered"]


class TestModes:
    def test_stream_mode(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """Stream mode XADDs one entry per record with the document in the field "data"."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        logger.info("hello %s", "stream", extra={"user": "ann"})
        assert handler.flush(5) is True
        entries = client.xrange(key)
        assert len(entries) == 1
        assert set(entries[0][1]) == {b"data"}
        document = json.loads(entries[0][1][b"data"])
        assert document["message"] == "hello stream"
        assert document["extra"] == {"user": "ann"}

    def test_list_mode_documents_are_plain_json(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """List mode RPUSHes one JSON object per element, in order (what Logstash's json codec reads)."""
        handler = make_handler(url=redis_server.url, key=key, mode="list")
        logger.addHandler(handler)
        for number in range(5):
            logger.warning("n=%d", number)
        assert handler.flush(5)
        documents = read_list(client, key)
        assert [document["message"] for document in documents] == [f"n={n}" for n in range(5)]
        assert all(isinstance(document["@timestamp"], str) and document["@version"] == "1" for document in documents)

    def test_pubsub_mode(
        self, redis_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """Pub/Sub mode publishes each document on the channel."""
        subscriber = redis.Redis.from_url(redis_server.url).pubsub()
        subscriber.subscribe(key)
        wait_until(lambda: subscriber.get_message(timeout=0.1))  # the subscribe confirmation
        handler = make_handler(url=redis_server.url, key=key, mode="pubsub")
        logger.addHandler(handler)
        logger.error("published %d", 1)
        logger.error("published %d", 2)
        assert handler.flush(5)
        received = [wait_until(lambda: subscriber.get_message(timeout=0.1)) for _ in range(2)]
        assert [json.loads(message["data"])["message"] for message in received] == ["published 1", "published 2"]
        subscriber.close()

    def test_stream_maxlen_trims(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """Stream maxlen trims approximately (MAXLEN ~): never below maxlen, far below what was written."""
        handler = make_handler(url=redis_server.url, key=key, maxlen=100, batch_size=50)
        logger.addHandler(handler)
        for number in range(2000):
            logger.info("%d", number)
        assert handler.flush(10)
        length = client.xlen(key)
        assert 100 <= length < 500
        assert read_stream(client, key)[-1]["message"] == "1999"

    def test_list_maxlen_keeps_newest(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """List maxlen keeps exactly the newest maxlen elements."""
        handler = make_handler(url=redis_server.url, key=key, mode="list", maxlen=10, batch_size=7)
        logger.addHandler(handler)
        for number in range(100):
            logger.info("%d", number)
        assert handler.flush(10)
        assert [document["message"] for document in read_list(client, key)] == [str(n) for n in range(90, 100)]

    @pytest.mark.parametrize("mode", ["stream", "list"])
    def test_ttl_is_refreshed(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        mode: str,
    ) -> None:
        """ttl sets EXPIRE on the key after each write."""
        handler = make_handler(url=redis_server.url, key=key, mode=mode, ttl=300)
        logger.addHandler(handler)
        logger.info("first")
        assert handler.flush(5)
        assert 290 <= client.ttl(key) <= 300
        client.expire(key, 50)
        logger.info("second")
        assert handler.flush(5)
        assert client.ttl(key) > 50


class TestConfiguration:
    def test_dict_config_list_mode(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """A handler built by dictConfig writes records at or above its level."""
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "redis": {
                        "class": "redis_log_handler.RedisHandler",
                        "url": redis_server.url,
                        "key": key,
                        "mode": "list",
                        "level": "INFO",
                        "fields": {"service": "api"},
                    }
                },
                "loggers": {"tests.dictconfig": {"handlers": ["redis"], "level": "DEBUG", "propagate": False}},
            }
        )
        log = logging.getLogger("tests.dictconfig")
        handler = log.handlers[0]
        assert isinstance(handler, RedisHandler)
        log.debug("filtered out")
        log.info("kept")
        assert handler.flush(5)
        documents = read_list(client, key)
        assert [(d["message"], d["service"]) for d in documents] == [("kept", "api")]
        log.removeHandler(handler)
        handler.close()

    def test_client_factory_is_the_connection(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """client= builds the connection (once, on the runtime thread); url then only labels the handler."""
        calls: list[int] = []

        def factory() -> redis.asyncio.Redis:
            calls.append(threading.get_ident())
            return redis.asyncio.Redis.from_url(redis_server.url)

        handler = make_handler(client=factory, url="redis://unused.invalid:1/0", key=key)
        logger.addHandler(handler)
        logger.info("through the factory")
        assert handler.flush(5)
        assert [document["message"] for document in read_stream(client, key)] == ["through the factory"]
        assert calls == [get_runtime().thread_id]

    def test_formatter_sets_message(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """With a Formatter set, "message" is the formatter's output."""
        handler = make_handler(url=redis_server.url, key=key)
        handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
        logger.addHandler(handler)
        logger.warning("formatted")
        assert handler.flush(5)
        assert read_stream(client, key)[0]["message"] == "WARNING|formatted"

    def test_bad_format_arguments_keep_the_record(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A message whose arguments do not match is still sent, raw, and counted as an error."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        logger.info("%d items", "not a number")
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert document["message"].startswith("%d items (message formatting failed")
        assert handler.stats()["errors"] == 1
        assert "redis_log_handler" in capsys.readouterr().err


class TestFilters:
    @pytest.mark.parametrize("kind", ["none", "passes", "refuses", "replaces"])
    def test_handle_answers_and_emits_as_stdlib_does(self, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """With or without filters, handle() returns what logging.Handler.handle does and emits the same record."""
        record = logging.makeLogRecord({"msg": "served"})
        replacement = logging.makeLogRecord({"msg": "replaced"})
        filters: dict[str, list[Callable[[logging.LogRecord], Any]]] = {
            "none": [],
            "passes": [lambda _record: True],
            "refuses": [lambda _record: False],
            "replaces": [lambda _record: replacement],  # Python 3.12+ emits the replacement
        }
        emitted: dict[str, list[logging.LogRecord]] = {"ours": [], "stdlib's": []}

        class Stdlib(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                emitted["stdlib's"].append(record)

        ours = RedisHandler(url="redis://127.0.0.1:1/0")
        monkeypatch.setattr(ours, "emit", emitted["ours"].append)
        stdlib = Stdlib()
        for handler in (ours, stdlib):
            for function in filters[kind]:
                handler.addFilter(function)
        try:
            answers = (ours.handle(record), stdlib.handle(record))
        finally:
            ours.close()
        assert answers[0] == answers[1]
        assert emitted["ours"] == emitted["stdlib's"]


class TestConcurrency:
    def test_many_threads_exactly_once_in_order(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """20 threads x 10,000 records: each arrives once, in per-thread order, and the stats add up."""
        threads_count, per_thread = 20, 10_000
        # The buffer holds the whole burst: this test is about ordering, not overflow.
        handler = make_handler(url=redis_server.url, key=key, mode="list", buffer_size=threads_count * per_thread)
        logger.addHandler(handler)
        start = threading.Barrier(threads_count)

        def work(worker: int) -> None:
            start.wait()
            for number in range(per_thread):
                logger.info("record", extra={"worker": worker, "n": number})

        workers = [threading.Thread(target=work, args=(worker,)) for worker in range(threads_count)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        assert handler.flush(60)
        documents = read_list(client, key)
        assert len(documents) == threads_count * per_thread
        assert len({document["id"] for document in documents}) == len(documents)
        sequences: dict[int, list[int]] = defaultdict(list)
        for document in documents:
            sequences[document["extra"]["worker"]].append(document["extra"]["n"])
        assert all(sequence == list(range(per_thread)) for sequence in sequences.values())
        stats = handler.stats()
        assert stats["accepted"] == stats["written"] == threads_count * per_thread
        assert stats["dropped"] == 0
        assert_balanced(stats)

    def test_handlers_share_one_runtime_thread(
        self, redis_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """Two handlers run their drain tasks on the same single background thread."""
        first = make_handler(url=redis_server.url, key=key)
        second = make_handler(url=redis_server.url, key=key + ":2", mode="list")
        logger.addHandler(first)
        logger.addHandler(second)
        logger.info("to both")
        assert first.flush(5)
        assert second.flush(5)
        runtime_threads = [thread for thread in threading.enumerate() if thread.name == "redis-log-handler"]
        assert len(runtime_threads) == 1
        assert runtime_threads[0].ident == get_runtime().thread_id


class TestRoundTrips:
    def test_a_round_trip_waits_for_four_batches(
        self, redis_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """A full batch does not send the writer off: it waits (up to flush_interval) for four, then writes them."""
        handler = make_handler(url=redis_server.url, key=key, buffer_size=1000, batch_size=10, flush_interval=30)
        logger.addHandler(handler)
        logger.info("first")
        assert handler.flush(10)
        logger.info("second")  # into an idle writer, which now waits flush_interval for a round trip to fill
        intake = handler._shipper.intake
        wait_until(lambda: len(intake) == 1 and intake.writer_waits is not None and intake.writer_waits() is False)
        for number in range(9):
            logger.info("%d", number)
        assert len(intake) == 10
        assert intake.writer_waits is not None
        assert intake.writer_waits() is False  # one batch: still waiting
        for number in range(30):
            logger.info("%d", number)
        wait_until(lambda: handler.stats()["written"] == 41)  # four batches: written long before flush_interval
        assert handler.stats()["batches"] == 5

    def test_round_trips_fit_a_quarter_of_a_small_buffer(self) -> None:
        """A round trip carries at most a quarter of the buffer and waits for no more than it carries."""
        sizes = {
            (100_000, 1000): (16_000, 4000),
            (8000, 1000): (2000, 2000),
            (1000, 1000): (1000, 1000),
            (1000, 10): (160, 40),
        }
        for (buffer_size, batch_size), expected in sizes.items():
            assert trip_sizes(WriterSettings.build(buffer_size=buffer_size, batch_size=batch_size)) == expected


class TestOverflow:
    def test_no_stepping_aside_while_the_writer_waits_for_a_batch(
        self,
        redis_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        step_aside_decisions: list[bool],
    ) -> None:
        """Past the high-water mark but below one batch, callers do not wait for a writer waiting on purpose."""
        decisions = step_aside_decisions
        handler = make_handler(url=redis_server.url, key=key, buffer_size=1000, batch_size=1000, flush_interval=30)
        logger.addHandler(handler)
        logger.info("first")
        assert handler.flush(10)
        logger.info("second")  # into an idle writer, which now waits flush_interval for a batch to fill
        intake = handler._shipper.intake
        wait_until(lambda: len(intake) == 1 and intake.writer_waits is not None and intake.writer_waits() is False)
        for number in range(700):  # past the high-water mark (500), below a batch (1000)
            logger.info("%d", number)
        assert len(decisions) == 202  # backlog 500 to 701
        assert not any(decisions)
        assert handler.flush(10) is True

    def test_stepping_aside_once_the_batch_is_full_before_the_writer_notices(
        self,
        redis_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        step_aside_decisions: list[bool],
    ) -> None:
        """A writer waiting for a batch could run once the batch is full: callers past the high-water mark step aside.

        The runtime thread is held (as the GIL holds it under sustained load) so it
        cannot notice the full batch; before the fix, callers went on until the
        buffer overflowed.
        """
        decisions = step_aside_decisions
        handler = make_handler(url=redis_server.url, key=key, buffer_size=4000, batch_size=1000, flush_interval=30)
        logger.addHandler(handler)
        logger.info("first")
        assert handler.flush(10)
        logger.info("second")  # into an idle writer, which now waits flush_interval for a batch to fill
        intake = handler._shipper.intake
        wait_until(lambda: len(intake) == 1 and intake.writer_waits is not None and intake.writer_waits() is False)
        held, release = threading.Event(), threading.Event()
        get_runtime().call_soon(lambda: (held.set(), release.wait(30)))
        assert held.wait(10)
        try:
            for number in range(2500):  # a full batch, which is also the high-water mark (a round trip's 1000)
                logger.info("%d", number)
        finally:
            release.set()
        assert len(decisions) == 1502  # backlog 1000 to 2501
        assert all(decisions)
        assert handler.flush(10) is True
        assert handler.stats()["written"] == 2502

    def test_drop_oldest_keeps_newest(self, key: str, make_handler: MakeHandler, logger: logging.Logger) -> None:
        """drop_oldest evicts the oldest records, counts each, and keeps the newest buffer_size."""
        server = EmbeddedRedis()  # not started yet: the port refuses connections
        handler = make_handler(url=server.url, key=key, mode="list", buffer_size=100, batch_size=10)
        logger.addHandler(handler)
        try:
            for number in range(250):
                logger.info("%d", number)
            stats = handler.stats()
            assert stats["accepted"] == 250
            # In the buffer, or in the one round trip in flight (at most a quarter of the buffer).
            assert stats["buffered"] <= 100 + 25
            assert stats["dropped_overflow"] == 250 - stats["buffered"]
            server.start()
            assert handler.flush(10) is False  # records were dropped since the last flush
            assert handler.flush(10) is True  # and none since
            delivered = [int(d["message"]) for d in read_list(redis.Redis.from_url(server.url), key)]
            assert delivered == sorted(delivered)
            assert delivered[-100:] == list(range(150, 250))
            stats = handler.stats()
            assert stats["written"] == len(delivered)
            assert stats["dropped_overflow"] == 250 - len(delivered)
            assert_balanced(stats)
        finally:
            handler.close()
            server.stop()

    def test_drop_newest_keeps_oldest(self, key: str, make_handler: MakeHandler, logger: logging.Logger) -> None:
        """drop_newest refuses records once the buffer is full and counts each refusal."""
        server = EmbeddedRedis()
        handler = make_handler(
            url=server.url, key=key, mode="list", buffer_size=100, batch_size=10, overflow="drop_newest"
        )
        logger.addHandler(handler)
        try:
            for number in range(250):
                logger.info("%d", number)
            stats = handler.stats()
            assert stats["buffered"] + stats["dropped_overflow"] == 250
            assert 100 <= stats["buffered"] <= 100 + 25
            server.start()
            assert handler.flush(10) is False
            delivered = [int(d["message"]) for d in read_list(redis.Redis.from_url(server.url), key)]
            # The first buffer_size records are never refused; once the drain task
            # takes a batch out, later records may fill the room it freed.
            assert delivered[:100] == list(range(100))
            assert delivered == sorted(delivered)
            assert handler.stats()["dropped_overflow"] == 250 - len(delivered)
            assert_balanced(handler.stats())
        finally:
            handler.close()
            server.stop()

    def test_block_waits_at_most_block_timeout(
        self, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """block makes the caller wait for space up to block_timeout, then drops and counts the record.

        Which records were dropped is read back from Redis once it is up: each of their calls waited its whole
        block_timeout, and no call waited much longer (Redis stays unreachable meanwhile)."""
        block_timeout = 1.0
        server = EmbeddedRedis()
        handler = make_handler(
            url=server.url,
            key=key,
            mode="list",
            buffer_size=20,
            batch_size=5,
            overflow="block",
            block_timeout=block_timeout,
        )
        logger.addHandler(handler)
        try:
            durations = []
            for number in range(27):
                started = time.monotonic()
                logger.info("%d", number)
                durations.append(time.monotonic() - started)
            dropped = handler.stats()["dropped_overflow"]
            assert dropped > 0
            assert max(durations) < 2 * block_timeout  # released although Redis stays unreachable
            server.start()
            assert handler.flush(10) is False
            assert_balanced(handler.stats())
            written = {int(document["message"]) for document in read_list(redis.Redis.from_url(server.url), key)}
            refused = set(range(27)) - written
            assert len(refused) == dropped
            assert all(durations[number] >= block_timeout for number in refused)
        finally:
            handler.close()
            server.stop()

    def test_block_resumes_when_space_frees(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """With Redis healthy, a small buffer under block loses nothing."""
        handler = make_handler(
            url=redis_server.url,
            key=key,
            mode="list",
            buffer_size=10,
            batch_size=5,
            overflow="block",
            block_timeout=5.0,
        )
        logger.addHandler(handler)
        for number in range(2000):
            logger.info("%d", number)
        assert handler.flush(10)
        assert [int(d["message"]) for d in read_list(client, key)] == list(range(2000))
        assert handler.stats()["dropped"] == 0


class TestFlushAndClose:
    def test_flush_false_while_down_then_true(
        self, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """flush() returns False on timeout while Redis is down and True once the records are in."""
        handler = make_handler(url=own_server.url, key=key)
        logger.addHandler(handler)
        own_server.kill()
        logger.info("waiting")
        started = time.monotonic()
        assert handler.flush(0.3) is False
        assert time.monotonic() - started < 0.3 + 1.0
        own_server.start()
        assert handler.flush(10) is True

    def test_flush_with_nothing_logged(self, redis_server: EmbeddedRedis, make_handler: MakeHandler, key: str) -> None:
        """flush() on a fresh handler returns True at once."""
        assert make_handler(url=redis_server.url, key=key).flush(0) is True

    def test_aflush_does_not_block_the_callers_loop(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """aflush() awaits delivery on the application's own loop, which keeps running meanwhile."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)

        async def main() -> tuple[bool, int]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            task = asyncio.create_task(ticker())
            for number in range(500):
                logger.info("%d", number)
            done = await handler.aflush(5)
            task.cancel()
            return done, ticks

        done, ticks = asyncio.run(main())
        assert done is True
        assert ticks > 0
        assert client.xlen(key) == 500

    def test_close_is_idempotent_and_counts_later_records(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """close() writes what is buffered, a second close() is a no-op, later records count as dropped_closed."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for number in range(100):
            logger.info("%d", number)
        handler.close()
        assert client.xlen(key) == 100
        handler.close()
        logger.info("after close")
        stats = handler.stats()
        assert stats["written"] == 100
        assert stats["dropped_closed"] == 1
        assert_balanced(stats)

    def test_close_is_bounded_when_redis_is_frozen(
        self,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """close() gives up after close_timeout with Redis frozen, counts what was not sent and says so."""
        handler = make_handler(url=own_server.url, key=key, close_timeout=0.5)
        logger.addHandler(handler)
        logger.info("before freeze")
        assert handler.flush(5)
        own_server.pause()
        try:
            for number in range(10):
                logger.info("%d", number)
            started = time.monotonic()
            handler.close()
            elapsed = time.monotonic() - started
        finally:
            own_server.resume()
        assert elapsed < 0.5 + 1.0
        stats = handler.stats()
        assert stats["dropped_closed"] == 10
        assert_balanced(stats)
        assert "were not written before close_timeout" in capsys.readouterr().err

    def test_flush_then_close_share_the_budget(
        self,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """flush() then close(), as logging.shutdown() calls them, take close_timeout together when Redis is down;
        the one record is named in the singular."""
        handler = make_handler(url=own_server.url, key=key, close_timeout=0.6)
        logger.addHandler(handler)
        own_server.kill()
        logger.info("never delivered")
        started = time.monotonic()
        assert handler.flush() is False
        handler.close()
        assert time.monotonic() - started < 0.6 + 0.9
        assert handler.stats()["dropped_closed"] == 1
        stderr = capsys.readouterr().err
        assert f"1 record for {key!r} was not written before close_timeout" in stderr
        assert f"closed: of 1 record logged to {key!r} in this process, 0 were written and 1 was dropped" in stderr


class TestRecursion:
    def test_records_from_the_runtime_thread_are_not_written(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """With the handler on the root logger at DEBUG, records logged on the runtime thread are dropped."""
        get_runtime()  # started now, so asyncio's start-up record is not counted here
        handler = make_handler(url=redis_server.url, key=key)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        logging.getLogger("redis").setLevel(logging.DEBUG)
        try:
            logging.getLogger("tests.app").info("from the application")
            assert handler.flush(5)
            runtime = get_runtime()
            logged = asyncio.run_coroutine_threadsafe(_log_on_loop(), runtime.loop)
            assert logged.result(5) == "done"
            assert handler.flush(5)
        finally:
            logging.getLogger("redis").setLevel(logging.NOTSET)
            root.removeHandler(handler)
        loggers = [document["logger"] for document in read_stream(client, key)]
        assert loggers == ["tests.app"]
        stats = handler.stats()
        assert stats["dropped_internal"] == 2
        assert_balanced(stats)

    def test_a_record_the_application_logs_while_a_message_is_formatted_is_written(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """Application code run to format a message (an argument's ``__str__``) may log: that record is written too."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)

        class Order:
            def __str__(self) -> str:
                logger.info("order looked up")
                return "order 7"

        logger.info("paid for %s", Order())
        assert handler.flush(5)
        assert sorted(document["message"] for document in read_stream(client, key)) == [
            "order looked up",
            "paid for order 7",
        ]
        assert handler.stats()["dropped_internal"] == 0

    def test_start_up_logging_does_not_deadlock(self, redis_server: EmbeddedRedis, key: str) -> None:
        """asyncio logs while the runtime starts, on the caller's thread: that record is dropped, not deadlocked on.

        Runs in a fresh interpreter, where the first record starts the runtime.
        """
        script = (
            "import logging\n"
            "from redis_log_handler import RedisHandler\n"
            f"first = RedisHandler(url={redis_server.url!r}, key={key!r})\n"
            f"second = RedisHandler(url={redis_server.url!r}, key={key + ':2'!r})\n"
            "root = logging.getLogger()\n"
            "root.addHandler(first)\n"
            "root.addHandler(second)\n"
            "root.setLevel(logging.DEBUG)\n"
            "logging.getLogger('app').info('first record')\n"
            "assert first.flush(10) and second.flush(10)\n"
            "for handler in (first, second):\n"
            "    stats = handler.stats()\n"
            "    print(stats['written'], stats['dropped_internal'] >= 1)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["1", "True", "1", "True"]

    def test_flush_and_close_on_the_runtime_thread_return(
        self, redis_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """flush() and close() called on the runtime thread itself return at once instead of deadlocking."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        logger.info("one")

        flush_timeout = 5.0

        async def flush_and_close() -> tuple[bool, float]:
            started = time.monotonic()
            handler.flush(flush_timeout)
            handler.close()
            return True, time.monotonic() - started

        done, elapsed = asyncio.run_coroutine_threadsafe(flush_and_close(), get_runtime().loop).result(30)
        assert done
        # The records can only be written by this thread, so a flush that waited would wait it all out.
        assert elapsed < flush_timeout
        wait_until(lambda: handler.stats()["buffered"] == 0)
        assert_balanced(handler.stats())

    def test_diagnostics_do_not_reach_the_root_logger(
        self, key: str, make_handler: MakeHandler, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The handler's own reports go to stderr through a private logger, never to the application's handlers."""
        seen: list[logging.LogRecord] = []
        collector = logging.Handler()
        collector.emit = seen.append  # type: ignore[method-assign]
        root = logging.getLogger()
        root.addHandler(collector)
        root.setLevel(logging.DEBUG)
        handler = make_handler(url=EmbeddedRedis().url, key=key)  # nothing listens there
        logger.addHandler(handler)
        logger.info("undeliverable")
        wait_until(lambda: handler.stats()["last_error"] is not None)
        assert "cannot reach Redis" in capsys.readouterr().err
        assert [record.name for record in seen if record.name.startswith("redis_log_handler")] == []


class TestHealth:
    def test_health_fields_follow_the_connection(
        self, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """connected, last_error and oldest_buffered_age describe a healthy, a failing and a recovered handler."""
        handler = make_handler(url=own_server.url, key=key, socket_timeout=0.5)
        fresh = handler.stats()
        assert (fresh["connected"], fresh["last_error"], fresh["oldest_buffered_age"]) == (False, None, None)
        logger.addHandler(handler)
        logger.info("healthy")
        assert handler.flush(5)
        healthy = handler.stats()
        assert healthy["connected"] is True
        assert healthy["oldest_buffered_age"] is None
        assert healthy["idempotent_writes"] is False  # no local server has IDMP (Redis 8.6+)

        own_server.kill()
        logger.info("waiting")
        failing = wait_until(lambda: (stats := handler.stats())["last_error"] is not None and stats)
        assert failing["connected"] is False
        assert failing["last_error_at"] <= time.time()
        wait_until(lambda: (handler.stats()["oldest_buffered_age"] or 0) >= 0.2)

        own_server.start()
        assert handler.flush(10)
        recovered = handler.stats()
        assert recovered["connected"] is True
        assert recovered["oldest_buffered_age"] is None
        assert recovered["last_error"].startswith("ConnectionError")  # the last failure stays for the operator to read


def test_concurrent_first_records_start_one_runtime(redis_server: EmbeddedRedis, key: str) -> None:
    """Eight threads logging their first record at once, root at DEBUG: one runtime, no deadlock, all written."""
    script = (
        "import logging, threading\n"
        "from redis_log_handler import RedisHandler\n"
        f"handler = RedisHandler(url={redis_server.url!r}, key={key!r})\n"
        "root = logging.getLogger()\n"
        "root.addHandler(handler)\n"
        "root.setLevel(logging.DEBUG)\n"
        "barrier = threading.Barrier(8)\n"
        "def first() -> None:\n"
        "    barrier.wait()\n"
        "    logging.getLogger('app').info('first')\n"
        "threads = [threading.Thread(target=first) for _ in range(8)]\n"
        "for thread in threads: thread.start()\n"
        "for thread in threads: thread.join(30)\n"
        "assert handler.flush(10)\n"
        "runtimes = [t for t in threading.enumerate() if t.name == 'redis-log-handler']\n"
        "print(handler.stats()['written'], len(runtimes))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8", "1"]


async def _log_on_loop() -> str:
    logging.getLogger("redis.asyncio.connection").debug("as if redis-py logged on the runtime loop")
    logging.getLogger("asyncio").warning("as if asyncio logged on the runtime loop")
    return "done"


def _document_sizes(documents: list[dict[str, Any]]) -> list[int]:
    return [len(json.dumps(document).encode()) for document in documents]


class TestDocumentsEndToEnd:
    def test_awkward_values_produce_valid_documents(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """Unserialisable values, non-UTF-8 bytes, huge messages and tracebacks all arrive as valid JSON."""
        handler = make_handler(url=redis_server.url, key=key, max_document_bytes=4096)
        logger.addHandler(handler)
        logger.info("objects", extra={"obj": object(), "raw": b"\xff\x00", "nan": float("nan")})
        logger.info("surrogate \udcff")
        logger.info("x" * 100_000)
        try:
            raise KeyError("missing")
        except KeyError:
            logger.exception("failed")
        assert handler.flush(5)
        documents = read_stream(client, key)
        assert len(documents) == 4
        assert documents[0]["extra"]["raw"] == "\\xff\x00"  # invalid bytes escaped, NUL kept
        assert documents[1]["message"] == "surrogate \\udcff"
        assert documents[2]["truncated"] is True
        assert documents[3]["exception"]["type"] == "KeyError"
        assert "raise KeyError" in documents[3]["exception"]["traceback"]
        assert max(_document_sizes(documents)) <= 4096
