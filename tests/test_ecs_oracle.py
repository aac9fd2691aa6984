"""schema="ecs" against Elastic's own formatters: every field ``ecs-logging`` writes for a record is in the
handler's document, in the same place, with the same value (``@timestamp`` may carry more digits).

Each record is logged once and seen by both: the handler (through Redis) and ``ecs-logging``'s formatter
(``StdlibFormatter`` for stdlib records and, rebuilt as a stdlib record the way Loguru's propagation recipe
does, for Loguru records; ``StructlogFormatter`` for structlog events).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import ecs_logging
import pytest
import redis
import structlog
from loguru import logger as loguru_logger

from redis_log_handler import LoguruSink, RedisHandler, StructlogProcessor
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream

MakeHandler = Callable[..., RedisHandler]
EXTRA = {"user.id": "u-5", "http.request.method": "POST", "customer": 42, "cart": {"items": 3, "total": 9.5}}


def leaves(document: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) of *document*; ``@timestamp``, ``log.level`` and ``ecs.version`` are paths."""
    for name, value in document.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{path}.")
        else:
            yield path, value


def at(document: dict[str, Any], path: str) -> Any:
    """The value at a dotted *path* (a top-level dotted key first, as ECS writes three of them)."""
    if path in document:
        return document[path]
    value: Any = document
    for name in path.split("."):
        value = value[name]
    return value


def assert_agrees(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Every field *theirs* has, *ours* has at the same place with the same value."""
    for path, value in leaves(theirs):
        if path == "@timestamp":
            mine = datetime.datetime.fromisoformat(at(ours, path))
            assert abs(mine - datetime.datetime.fromisoformat(value)) < datetime.timedelta(seconds=1), path
            continue
        assert at(ours, path) == value, path


class Formatted(logging.Handler):
    """Formats each record with ``ecs-logging``'s StdlibFormatter and keeps the documents."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(ecs_logging.StdlibFormatter())
        self.documents: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.documents.append(json.loads(self.format(record)))


def raise_chained() -> None:
    """Raise a ValueError from a KeyError."""
    try:
        {}["missing"]
    except KeyError as exc:
        raise ValueError("no such order") from exc


def handler_documents(handler: RedisHandler, client: redis.Redis, key: str) -> list[dict[str, Any]]:
    """What the handler wrote, once it is all in."""
    assert handler.flush(10)
    return read_stream(client, key)


def test_stdlib_records(
    redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler, logger: logging.Logger
) -> None:
    """stdlib records: a message with arguments, extras (dotted, nested), an exception, a stack."""
    formatted = Formatted()
    logger.addHandler(formatted)
    logger.addHandler(make_handler(url=redis_server.url, key=key, schema="ecs"))
    handler = logger.handlers[-1]
    assert isinstance(handler, RedisHandler)
    logger.warning("order %s accepted in %.1f ms", "A-17", 12.5, extra=EXTRA)
    try:
        raise_chained()
    except ValueError:
        logger.exception("refund failed", extra={"order": 7})
    logger.info("where am I", stack_info=True)
    ours = handler_documents(handler, client, key)
    assert len(ours) == len(formatted.documents) == 3
    for mine, theirs in zip(ours, formatted.documents, strict=True):
        assert_agrees(mine, theirs)
    assert ours[1]["error"]["type"] == "ValueError"


def loguru_as_stdlib(into: Formatted) -> Callable[[Any], None]:
    """A Loguru sink that hands each record to *into* as the stdlib record Loguru's propagation recipe makes."""

    def sink(message: Any) -> None:
        record = message.record
        exception = record["exception"]
        stdlib = logging.LogRecord(
            record["name"],
            record["level"].no,
            record["file"].path,
            record["line"],
            record["message"],
            (),
            (exception.type, exception.value, exception.traceback) if exception else None,
            record["function"],
        )
        stdlib.created = record["time"].timestamp()
        stdlib.msecs = record["time"].microsecond // 1000
        stdlib.process, stdlib.processName = record["process"].id, record["process"].name
        stdlib.thread, stdlib.threadName = record["thread"].id, record["thread"].name
        stdlib.__dict__.update(record["extra"])
        into.emit(stdlib)

    return sink


def test_loguru_records(redis_server: EmbeddedRedis, client: redis.Redis, key: str, make_handler: MakeHandler) -> None:
    """Loguru records, with bound extras and an exception."""
    handler = make_handler(url=redis_server.url, key=key, schema="ecs")
    formatted = Formatted()
    sinks = [loguru_logger.add(LoguruSink(handler)), loguru_logger.add(loguru_as_stdlib(formatted))]
    try:
        loguru_logger.bind(**EXTRA).warning("order {} accepted", "A-17")
        try:
            raise_chained()
        except ValueError:
            loguru_logger.bind(order=7).exception("refund failed")
    finally:
        for sink in sinks:
            loguru_logger.remove(sink)
    ours = handler_documents(handler, client, key)
    assert len(ours) == len(formatted.documents) == 2
    for mine, theirs in zip(ours, formatted.documents, strict=True):
        assert_agrees(mine, theirs)


@pytest.fixture
def structlog_documents() -> Iterator[list[dict[str, Any]]]:
    """Where ``ecs-logging``'s StructlogFormatter output lands (the chain ends in a ReturnLogger)."""
    documents: list[dict[str, Any]] = []
    yield documents
    structlog.reset_defaults()


def test_structlog_events(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: MakeHandler,
    structlog_documents: list[dict[str, Any]],
) -> None:
    """structlog events, with their keys and a rendered exception, as ecs-logging's chain documents them."""
    handler = make_handler(url=redis_server.url, key=key, schema="ecs")
    structlog.configure(
        processors=[
            StructlogProcessor(handler),
            structlog.processors.format_exc_info,
            ecs_logging.StructlogFormatter(),
            lambda _, __, rendered: structlog_documents.append(json.loads(rendered)) or rendered,
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger()
    log.warning("order accepted", order="A-17", **{"user.id": "u-5", "cart": {"items": 3}})
    try:
        raise_chained()
    except ValueError:
        log.error("refund failed", exc_info=True, order=7)
    ours = handler_documents(handler, client, key)
    assert len(ours) == len(structlog_documents) == 2
    for mine, theirs in zip(ours, structlog_documents, strict=True):
        assert_agrees(mine, theirs)
