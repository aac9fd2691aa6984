"""schema="ecs" against Elastic's own formatters, both ways: every field ``ecs-logging`` writes for a record is in
the handler's document, in the same place and layout, with the same value (``@timestamp`` to the millisecond,
which is all ``ecs-logging`` writes), and the handler writes no field ``ecs-logging`` does not, except those
docs/schema.md lists as its own: ``event.id``, ``host.hostname``, the static fields (in their ECS place, or
under ``labels``) and ``redis_log_bridge.*``.

Each record is logged once and seen by both: the handler (through Redis) and ``ecs-logging``'s formatter
(``StdlibFormatter`` for stdlib records and, rebuilt as a stdlib record the way Loguru's propagation recipe
does, for Loguru records; ``StructlogFormatter`` for structlog events). Each source logs a plain message, a
message with arguments, extras (dotted, nested), an exception with and without extras.
"""

from __future__ import annotations

import json
import logging
import time
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
# Static fields: one named as an ECS field (written in its place), one that is not (written under labels).
FIELDS = {"service.name": "checkout", "team": "payments"}
FIELDS_WRITTEN = {("service", "name"): "checkout", ("labels", "team"): "payments"}
OURS = {("event", "id"), ("host", "hostname")}  # docs/schema.md: what the handler adds beside ecs-logging's fields
OUR_SET = "redis_log_bridge"

Path = tuple[str, ...]


def leaves(document: dict[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) of *document*; a path names each key, so ``{"log.level": ...}`` (a top-level dotted
    key, as ECS writes three) and ``{"log": {"level": ...}}`` are different paths."""
    for name, value in document.items():
        path = (*prefix, name)
        if isinstance(value, dict) and value:
            yield from leaves(value, path)
        else:
            yield path, value


# ecs-logging's StructlogFormatter writes the event's own keys (and the rendered exception) only; the handler
# places a structlog event's logger, call site, process and exception where StdlibFormatter places a stdlib
# record's (docs/schema.md).
AS_STDLIB = {
    ("error", "type"),
    ("error", "message"),
    ("log", "logger"),
    ("log", "original"),
    ("log", "origin", "file", "line"),
    ("log", "origin", "file", "name"),
    ("log", "origin", "function"),
    ("process", "pid"),
    ("process", "name"),
    ("process", "thread", "id"),
    ("process", "thread", "name"),
}


def assert_agrees(ours: dict[str, Any], theirs: dict[str, Any], also: frozenset[Path] = frozenset()) -> None:
    """*ours* has every field of *theirs*, in the same place with the same value, and nothing else but our own
    (and the fields *also*)."""
    mine, their = dict(leaves(ours)), dict(leaves(theirs))
    timestamp = ("@timestamp",)
    assert mine.pop(timestamp)[:23] + "Z" == their.pop(timestamp)  # ecs-logging writes milliseconds
    assert {path: mine.get(path) for path in their} == their
    added = {path: value for path, value in mine.items() if path not in their}
    assert {path for path in added if path not in OURS | also and path[0] != OUR_SET} == set(FIELDS_WRITTEN)
    assert {path: added[path] for path in FIELDS_WRITTEN} == FIELDS_WRITTEN
    assert set(OURS) <= set(added)


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
    logger.addHandler(make_handler(url=redis_server.url, key=key, schema="ecs", fields=FIELDS))
    handler = logger.handlers[-1]
    assert isinstance(handler, RedisHandler)
    logger.info("plain")
    logger.warning("order %s accepted in %.1f ms", "A-17", 12.5)
    logger.warning("order %s accepted", "A-18", extra=EXTRA)
    try:
        raise_chained()
    except ValueError:
        logger.exception("refund failed")
        logger.exception("refund failed for %d", 7, extra={"order": 7, **EXTRA})
    logger.info("where am I", stack_info=True)
    ours = handler_documents(handler, client, key)
    assert len(ours) == len(formatted.documents) == 6
    for mine, theirs in zip(ours, formatted.documents, strict=True):
        assert_agrees(mine, theirs)
    assert ours[3]["error"]["type"] == "ValueError"


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
    handler = make_handler(url=redis_server.url, key=key, schema="ecs", fields=FIELDS)
    formatted = Formatted()
    sinks = [loguru_logger.add(LoguruSink(handler)), loguru_logger.add(loguru_as_stdlib(formatted))]
    try:
        loguru_logger.info("plain")
        loguru_logger.warning("order {} accepted", "A-17")
        loguru_logger.bind(**EXTRA).warning("order {} accepted", "A-18")
        try:
            raise_chained()
        except ValueError:
            loguru_logger.exception("refund failed")
            loguru_logger.bind(order=7, **EXTRA).exception("refund failed for {}", 7)
    finally:
        for sink in sinks:
            loguru_logger.remove(sink)
    ours = handler_documents(handler, client, key)
    assert len(ours) == len(formatted.documents) == 5
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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """structlog events, with their keys and a rendered exception, as ecs-logging's chain documents them.

    Both stamp an event without a ``timestamp`` with the time they see it: one clock, stopped, for both."""
    monkeypatch.setattr(time, "time", lambda: 1_765_000_000.123456)
    handler = make_handler(url=redis_server.url, key=key, schema="ecs", fields=FIELDS)
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
    log.info("plain")
    log.warning("order accepted", order="A-17")
    log.warning("order accepted", order="A-18", **{"user.id": "u-5", "cart": {"items": 3}})
    try:
        raise_chained()
    except ValueError:
        log.error("refund failed", exc_info=True)
        log.error("refund failed", exc_info=True, order=7, **{"user.id": "u-5"})
    ours = handler_documents(handler, client, key)
    assert len(ours) == len(structlog_documents) == 5
    for mine, theirs in zip(ours, structlog_documents, strict=True):
        assert_agrees(mine, theirs, also=frozenset(AS_STDLIB))
