"""Helpers for the reader-side tests: writing documents as producers do, and collecting re-emitted records."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from redis_log_handler import RedisLogConsumer
from redis_log_handler._schema.document import iso_timestamp, new_document

from .helpers import wait_until


def documents(count: int, logger: str, start: int = 0) -> list[dict[str, Any]]:
    """*count* schema-1 documents from *logger*, their messages numbered from *start*."""
    return [
        new_document(
            timestamp=iso_timestamp(1_700_000_000 + number), level="INFO", levelno=20, logger=logger,
            message=f"record {number}", source="stdlib", module="app", function="work", line=7, file="/srv/app.py",
            process=1, process_name="MainProcess", thread=2, thread_name="MainThread", exception=None, stack=None,
            extra={"number": number},
        )
        for number in range(start, start + count)
    ]  # fmt: skip


def write_stream(client: redis.Redis, key: str, docs: list[dict[str, Any]]) -> None:
    """XADD each document as the handler does (field ``data``)."""
    with client.pipeline(transaction=False) as pipe:
        for document in docs:
            pipe.xadd(key, {"data": json.dumps(document)})
        pipe.execute()


def write_list(client: redis.Redis, key: str, docs: list[dict[str, Any]]) -> None:
    """RPUSH each document as the handler does in list mode."""
    client.rpush(key, *[json.dumps(document) for document in docs])


class Collector(logging.Handler):
    """Keeps every record it is given; raises for the records *fail* picks (as a broken handler would)."""

    def __init__(self, fail: Callable[[logging.LogRecord], bool] | None = None) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.failures = 0
        self._fail = fail

    def emit(self, record: logging.LogRecord) -> None:
        if self._fail is not None and self._fail(record):
            self.failures += 1
            raise OSError("disk full")
        self.records.append(record)

    @property
    def numbers(self) -> list[int]:
        """The ``number`` extra of each record kept, in order."""
        return [record.number for record in self.records]  # type: ignore[attr-defined]


@contextmanager
def collecting(name: str, fail: Callable[[logging.LogRecord], bool] | None = None) -> Iterator[Collector]:
    """A Collector on the logger *name* (non-propagating) while the block runs."""
    collector = Collector(fail)
    log = logging.getLogger(name)
    log.addHandler(collector)
    log.propagate = False
    try:
        yield collector
    finally:
        log.removeHandler(collector)


@contextmanager
def running(consumer: RedisLogConsumer) -> Iterator[threading.Event]:
    """Run *consumer* in a thread while the block runs; stops it (and fails on a crash) afterwards."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.run(stop)
        except BaseException as exc:
            errors.append(exc)
            raise

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=10)
        consumer.close()
    assert not thread.is_alive(), "the consumer did not stop within 10 s"
    assert not errors, errors


def new_logger_name() -> str:
    """A logger name no other test uses."""
    return f"produced.{uuid.uuid4().hex[:8]}"


def wait_for_numbers(collector: Collector, count: int, timeout: float = 15.0) -> None:
    """Wait until *collector* holds *count* records."""
    wait_until(lambda: len(collector.records) >= count, timeout=timeout)


class Keep(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def produced(log: logging.Logger, count: int) -> list[logging.LogRecord]:
    """*count* records logged through *log*: messages with arguments, a traceback, a stack, an extra."""
    keep = Keep()
    log.addHandler(keep)
    for number in range(count):
        log.info("request %d took %.1f ms", number, number / 7, extra={"request": number})
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed for %s", "user-1")
    log.warning("where am I", stack_info=True)
    log.removeHandler(keep)
    return keep.records
