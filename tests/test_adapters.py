"""Loguru and structlog adapters: one handler, one schema, one writer for every framework (real Redis)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import structlog
from loguru import logger as loguru_logger

from redis_log_handler import LoguruSink, RedisHandler, StructlogProcessor
from redis_log_handler.testing import EmbeddedRedis, InMemoryTransport

from .helpers import Freeze, read_stream

MakeHandler = Callable[..., RedisHandler]


class InterceptHandler(logging.Handler):
    """Loguru's InterceptHandler recipe, binding the stdlib logger name as docs/loguru.md shows."""

    def emit(self, record: logging.LogRecord) -> None:
        """Re-log *record* through Loguru from the caller's frame."""
        try:
            level: str | int = loguru_logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame, depth = frame.f_back, depth + 1
        loguru_logger.opt(depth=depth, exception=record.exc_info).bind(logger_name=record.name).log(
            level, record.getMessage()
        )


@pytest.fixture(autouse=True)
def _isolate_frameworks() -> Iterator[None]:
    """Each test starts with no Loguru sinks and structlog's defaults, and leaves them so."""
    loguru_logger.remove()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    loguru_logger.remove()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def configure_native_structlog(handler: RedisHandler, **options: Any) -> None:
    """The README's native structlog setup, rendering to a list instead of the console."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            StructlogProcessor(handler, **options),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )


class TestMixedFrameworks:
    def test_three_frameworks_ten_threads_one_stream(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """10 threads log through stdlib, Loguru and structlog into one handler: each record once, mapped faithfully."""
        handler = make_handler(url=redis_server.url, key=key, buffer_size=100_000)
        logger.addHandler(handler)
        loguru_logger.add(LoguruSink(handler), level="DEBUG")
        configure_native_structlog(handler)
        threads_count, per_thread = 10, 300

        def work(worker: int) -> None:
            bound_loguru = loguru_logger.bind(worker=worker)
            bound_structlog = structlog.get_logger("app.struct").bind(worker=worker)
            for number in range(per_thread):
                logger.info("stdlib %d", number, extra={"worker": worker, "n": number})
                bound_loguru.warning("loguru {}", number, n=number)
                bound_structlog.error("structlog", n=number)

        workers = [threading.Thread(target=work, args=(worker,)) for worker in range(threads_count)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("stdlib failed")
            loguru_logger.exception("loguru failed")
            structlog.get_logger("app.struct").exception("structlog failed")
        assert handler.flush(30)

        documents = read_stream(client, key)
        assert len(documents) == threads_count * per_thread * 3 + 3
        assert len({document["id"] for document in documents}) == len(documents)
        order: dict[tuple[str, int], list[int]] = defaultdict(list)
        for document in documents[:-3]:
            order[(document["source"], document["extra"]["worker"])].append(document["extra"]["n"])
            expected_level = {"stdlib": "INFO", "loguru": "WARNING", "structlog": "ERROR"}[document["source"]]
            assert document["level"] == expected_level
        assert len(order) == threads_count * 3
        assert all(numbers == list(range(per_thread)) for numbers in order.values())

        by_source = {document["source"]: document for document in documents[:-3] if document["extra"]["n"] == 7}
        assert by_source["stdlib"]["message"] == "stdlib 7"
        assert by_source["stdlib"]["logger"] == logger.name
        assert by_source["loguru"]["message"] == "loguru 7"
        assert by_source["loguru"]["logger"] == __name__
        assert by_source["loguru"]["function"] == "work"
        assert by_source["loguru"]["levelno"] == 30
        assert by_source["structlog"]["message"] == "structlog"
        assert by_source["structlog"]["levelno"] == logging.ERROR
        assert set(by_source["structlog"]["extra"]) == {"worker", "n"}

        failures = {document["source"]: document for document in documents[-3:]}
        assert set(failures) == {"stdlib", "loguru", "structlog"}
        for document in failures.values():
            assert document["level"] == "ERROR"
            assert document["exception"]["type"] == "ValueError"
            assert document["exception"]["message"] == "boom"
            assert "raise ValueError" in document["exception"]["traceback"]

        stats = handler.stats()
        assert stats["accepted_stdlib"] == stats["accepted_loguru"] == stats["accepted_structlog"] == 3001
        assert stats["written"] == stats["accepted"] == 9003


class TestLoguru:
    def test_extra_custom_level_and_time(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """bind() and contextualize() values sit at the top of extra; custom levels keep name and number."""
        handler = make_handler(url=redis_server.url, key=key)
        loguru_logger.add(LoguruSink(handler), level="DEBUG")
        loguru_logger.level("AUDIT", no=25)
        with loguru_logger.contextualize(request_id="r-1"):
            loguru_logger.bind(user="ann", payload={"a": [1, 2]}).log("AUDIT", "audited {}", "x")
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert document["source"] == "loguru"
        assert (document["level"], document["levelno"]) == ("AUDIT", 25)
        assert document["extra"] == {"request_id": "r-1", "user": "ann", "payload": {"a": [1, 2]}}
        assert document["@timestamp"].endswith("Z")
        assert abs(time.time() - _epoch(document["@timestamp"])) < 60

    @pytest.mark.parametrize("enqueue", [False, True])
    def test_delivery_with_and_without_enqueue(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler, enqueue: bool
    ) -> None:
        """With enqueue=True, logger.complete() then handler.flush() guarantee delivery, as without it."""
        handler = make_handler(url=redis_server.url, key=key)
        loguru_logger.add(LoguruSink(handler), enqueue=enqueue)
        for number in range(500):
            loguru_logger.info("n={}", number)
        loguru_logger.complete()
        assert handler.flush(10)
        assert [document["message"] for document in read_stream(client, key)] == [f"n={n}" for n in range(500)]

    def test_remove_keeps_a_shared_handler_open(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
    ) -> None:
        """logger.remove() does not close a handler that stdlib logging still uses."""
        handler = make_handler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        sink_id = loguru_logger.add(LoguruSink(handler))
        loguru_logger.info("via loguru")
        loguru_logger.remove(sink_id)
        logger.info("via stdlib")
        assert handler.flush(5)
        assert [document["source"] for document in read_stream(client, key)] == ["loguru", "stdlib"]
        assert handler.stats()["dropped_closed"] == 0

    def test_remove_closes_an_own_handler(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """A sink that created its own handler writes what it buffered and closes it on logger.remove()."""
        sink = LoguruSink(url=redis_server.url, key=key, close_timeout=2.0)
        sink_id = loguru_logger.add(sink)
        loguru_logger.info("only record")
        loguru_logger.remove(sink_id)
        assert client.xlen(key) == 1
        sink.handler.handle(logging.LogRecord("late", logging.INFO, __file__, 1, "late", None, None))
        assert sink.handler.stats()["dropped_closed"] == 1

    def test_sink_is_not_flushed_per_message(self) -> None:
        """The sink exposes write and stop but no flush, so Loguru never flushes it after each message."""
        sink = LoguruSink(url="redis://127.0.0.1:1/0")
        assert callable(sink.write)
        assert callable(sink.stop)
        assert not hasattr(sink, "flush")
        sink.handler.close()

    def test_intercepted_stdlib_records_keep_name_level_and_call_site(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """Stdlib records routed into Loguru by the documented InterceptHandler keep logger, level and call site."""
        handler = make_handler(url=redis_server.url, key=key)
        loguru_logger.add(LoguruSink(handler))
        library_logger = logging.getLogger("library.engine")
        library_logger.propagate = False
        library_logger.addHandler(InterceptHandler())
        library_logger.setLevel(logging.DEBUG)
        try:
            library_logger.warning("pool %s exhausted", "main")
            line = sys._getframe().f_lineno - 1
        finally:
            library_logger.handlers.clear()
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert (document["logger"], document["level"], document["message"]) == (
            "library.engine",
            "WARNING",
            "pool main exhausted",
        )
        assert (document["function"], document["line"], document["file"]) == (
            "test_intercepted_stdlib_records_keep_name_level_and_call_site",
            line,
            __file__,
        )
        assert document["extra"] == {}

    def test_bad_arguments(self, redis_server: EmbeddedRedis) -> None:
        """A handler and handler options together, or a non-handler, are configuration errors."""
        with pytest.raises(ValueError, match=r"^handler"):
            LoguruSink(RedisHandler(url=redis_server.url), key="x")
        with pytest.raises(ValueError, match=r"^handler"):
            LoguruSink(logging.StreamHandler())  # type: ignore[arg-type]


def _epoch(timestamp: str) -> float:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class TestStructlog:
    def test_native_event_mapping(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """event, level, timestamp, logger name, bound and contextvars context map onto the schema."""
        handler = make_handler(url=redis_server.url, key=key)
        configure_native_structlog(handler)
        structlog.contextvars.bind_contextvars(request_id="r-9")
        rendered = structlog.get_logger().bind(logger="app.api", user="bob").warning("slow request", ms=812.5)
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert document["source"] == "structlog"
        assert (document["level"], document["levelno"]) == ("WARNING", logging.WARNING)
        assert document["message"] == "slow request"
        assert document["logger"] == "app.api"
        assert document["extra"] == {"request_id": "r-9", "user": "bob", "ms": 812.5}
        assert abs(time.time() - _epoch(document["@timestamp"])) < 60
        assert '"event": "slow request"' in rendered  # the chain went on to the renderer

    def test_fields_filled_without_callsite_information(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """process_name is always filled, logger comes from the wrapped stdlib logger, the call site from the stack."""
        handler = make_handler(url=redis_server.url, key=key)
        structlog.configure(
            processors=[structlog.processors.add_log_level, StructlogProcessor(handler, drop=True)],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        structlog.get_logger("billing.invoices").info("invoice sent")
        line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert document["logger"] == "billing.invoices"
        assert document["process_name"] == "MainProcess"
        assert (document["process"], document["thread_name"]) == (os.getpid(), threading.current_thread().name)
        # Without CallsiteParameterAdder the call site is the first frame outside structlog.
        site = [document[field] for field in ("module", "function", "line", "file")]
        assert site == ["test_adapters", "test_fields_filled_without_callsite_information", line, __file__]

    def test_a_logger_without_a_name_is_named_after_the_calling_module(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """structlog's own loggers have no name: the record takes the calling module's, as Loguru's do."""
        handler = make_handler(url=redis_server.url, key=key)
        structlog.configure(
            processors=[structlog.processors.add_log_level, StructlogProcessor(handler, drop=True)],
            cache_logger_on_first_use=False,
        )
        structlog.get_logger().info("order accepted", order="A-17")
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert (document["logger"], document["module"]) == (__name__, "test_adapters")
        assert document["extra"] == {"order": "A-17"}

    def test_callsite_parameter_adder_fills_the_call_site(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """With CallsiteParameterAdder in the chain, module, function, line and file are the real call site."""
        handler = make_handler(url=redis_server.url, key=key)
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.CallsiteParameterAdder(),
                StructlogProcessor(handler, drop=True),
            ],
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        structlog.get_logger().info("with call site")
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert (document["module"], document["function"], document["line"], document["file"]) == (
            "test_adapters",
            "test_callsite_parameter_adder_fills_the_call_site",
            line,
            __file__,
        )

    def test_processor_returns_the_event_unchanged(
        self, redis_server: EmbeddedRedis, make_handler: MakeHandler, key: str
    ) -> None:
        """The processor hands on the very same dict, with the same contents."""
        processor = StructlogProcessor(make_handler(url=redis_server.url, key=key))
        event = {"event": "x", "level": "info", "nested": {"a": 1}}
        snapshot = {"event": "x", "level": "info", "nested": {"a": 1}}
        assert processor(None, "info", event) is event
        assert event == snapshot

    def test_level_filter_and_drop(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """level= skips lower events; drop=True ends the chain after buffering."""
        handler = make_handler(url=redis_server.url, key=key)
        configure_native_structlog(handler, level="WARNING", drop=True)
        log = structlog.get_logger()
        log.info("below the level")
        log.warn("warn is WARNING")
        assert handler.flush(5)
        [document] = read_stream(client, key)
        assert (document["message"], document["level"]) == ("warn is WARNING", "WARNING")

    def test_stdlib_setup_writes_each_event_once(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler
    ) -> None:
        """structlog.stdlib + ProcessorFormatter: each event reaches RedisHandler once, with its real call site."""
        handler = make_handler(url=redis_server.url, key=key)
        console_lines: list[str] = []

        class ListHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                console_lines.append(self.format(record))

        # Configured before the stdlib logger exists: structlog.stdlib.LoggerFactory installs the
        # Logger class whose findCaller skips structlog's own frames.
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        console = ListHandler()
        console.setFormatter(structlog.stdlib.ProcessorFormatter(processor=structlog.dev.ConsoleRenderer(colors=False)))
        stdlib_logger = logging.getLogger("app.stdlib_structlog")
        stdlib_logger.propagate = False
        stdlib_logger.setLevel(logging.DEBUG)
        stdlib_logger.addHandler(handler)
        stdlib_logger.addHandler(console)
        try:
            structlog.get_logger("app.stdlib_structlog").bind(order=17).info("order placed", total=9.5)
            stdlib_logger.warning("plain stdlib %s", "record")
            assert handler.flush(5)
        finally:
            stdlib_logger.handlers.clear()
        documents = read_stream(client, key)
        assert [(d["source"], d["message"]) for d in documents] == [
            ("structlog", "order placed"),
            ("stdlib", "plain stdlib record"),
        ]
        structured = documents[0]
        assert structured["logger"] == "app.stdlib_structlog"
        assert structured["level"] == "INFO"
        assert structured["function"] == "test_stdlib_setup_writes_each_event_once"
        assert structured["file"] == __file__
        assert structured["extra"] == {"order": 17, "total": 9.5}
        assert len(console_lines) == 2


class TestAsyncAndOutage:
    def test_event_loop_stays_responsive(
        self, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """Tasks logging through all three frameworks finish while Redis is frozen, and everything arrives.

        A logging call that waited on Redis, or held the event loop for a round trip, would have waited
        for the thaw; the tasks end before it.
        """
        handler = make_handler(url=own_server.url, key=key)
        logger.addHandler(handler)
        loguru_logger.add(LoguruSink(handler))
        configure_native_structlog(handler)
        assert handler.flush(10)

        async def worker(number: int) -> None:
            for step in range(200):
                logger.info("task %d step %d", number, step)
                loguru_logger.info("task {} step {}", number, step)
                structlog.get_logger().info("step", task=number, step=step)
                await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(*(worker(number) for number in range(10)))

        with Freeze(own_server) as freeze:
            asyncio.run(main())
            assert not freeze.over
        assert asyncio.run(handler.aflush(10))
        client = redis.Redis.from_url(own_server.url)
        assert client.xlen(key) == 10 * 200 * 3
        client.close()

    def test_adapters_deliver_after_redis_comes_back(
        self, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler
    ) -> None:
        """With Redis down, Loguru and structlog records are buffered and delivered once it is back."""
        handler = make_handler(url=own_server.url, key=key)
        loguru_logger.add(LoguruSink(handler))
        configure_native_structlog(handler)
        loguru_logger.info("warm")
        assert handler.flush(5)
        own_server.kill()
        for number in range(100):
            loguru_logger.info("loguru {}", number)
            structlog.get_logger().info("structlog", n=number)
        assert handler.flush(0.2) is False
        own_server.start()
        assert handler.flush(20) is True
        documents = read_stream(redis.Redis.from_url(own_server.url), key)
        assert len(documents) == 201
        assert handler.stats()["dropped"] == 0


def test_package_imports_without_the_frameworks() -> None:
    """Importing the package (and using RedisHandler) does not need loguru or structlog installed."""
    script = (
        "import sys\n"
        "sys.modules['loguru'] = None\n"
        "sys.modules['structlog'] = None\n"
        "import redis_log_handler\n"
        "handler = redis_log_handler.RedisHandler(url='redis://127.0.0.1:1/0')\n"
        "redis_log_handler.StructlogProcessor(handler)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert result.stdout.strip() == "ok", result.stderr


class TestSubmit:
    def test_an_adapter_record_never_raises_into_the_application(self, capsys: pytest.CaptureFixture[str]) -> None:
        """What an adapter hands over (a document that cannot be built, a source the handler does not know) is
        counted and said on stderr, never raised: the caller's logging call goes on."""
        memory = InMemoryTransport()
        handler = RedisHandler(transport=memory, close_timeout=1.0)
        try:
            handler.submit("structlog", os.getpid(), lambda: {"event": 1 / 0})
            handler.submit("journald", os.getpid(), dict)  # type: ignore[arg-type]
            handler.submit("loguru", os.getpid(), lambda: {"message": "kept", "level": "INFO"})
            assert handler.flush(5) is False  # one record was dropped
            stats = handler.stats()
            assert (stats["accepted"], stats["written"], stats["dropped_error"]) == (2, 1, 1)
            assert stats["errors"] == 2
            assert memory.messages() == ["kept"]
            err = capsys.readouterr().err
            assert "ZeroDivisionError" in err
            assert "KeyError: 'journald'" in err
        finally:
            handler.close()
