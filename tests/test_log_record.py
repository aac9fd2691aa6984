"""to_log_record: a document rebuilt as a LogRecord formats as the producer's own record would have."""

from __future__ import annotations

import logging
import sys
import time

import pytest

from redis_log_handler import to_log_record
from redis_log_handler._schema.document import stdlib_document

from .readers import Keep, produced

FORMAT = "%(asctime)s %(levelname)s %(name)s %(funcName)s:%(lineno)d %(message)s"


def test_the_same_line_as_the_producer(logger: logging.Logger) -> None:
    """Formatted with the same format, every rebuilt record gives the producer's line, traceback and stack included."""
    formatter = logging.Formatter(FORMAT)
    for record in produced(logger, 3000):  # enough records for milliseconds near a rounding boundary
        document = stdlib_document(record, record.getMessage())
        assert formatter.format(to_log_record(document)) == formatter.format(record)


def test_fields(logger: logging.Logger) -> None:
    """Each LogRecord attribute comes from its schema field; extras and source/host/id become attributes."""
    (record, *_) = produced(logger, 1)
    document = stdlib_document(record, record.getMessage())
    rebuilt = to_log_record(document)
    for name in ("name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName"):
        assert getattr(rebuilt, name) == getattr(record, name), name
    for name in ("process", "processName", "thread", "threadName", "msecs"):
        assert getattr(rebuilt, name) == getattr(record, name), name
    # To the microsecond, except where rounding crossed a millisecond and the record's msecs won (1 in 2,000).
    assert rebuilt.created == pytest.approx(record.created, abs=1e-3)
    assert (rebuilt.msg, rebuilt.args) == ("request 0 took 0.0 ms", ())
    assert rebuilt.request == 0  # type: ignore[attr-defined]
    assert (rebuilt.source, rebuilt.host, rebuilt.id) == ("stdlib", document["host"], document["id"])  # type: ignore[attr-defined]


def test_an_extra_named_like_a_record_attribute_is_left_out() -> None:
    """An extra key that would overwrite a LogRecord field (from structlog, say) does not."""
    rebuilt = to_log_record({"logger": "app", "message": "hi", "extra": {"name": "evil", "msg": "x", "user": "u1"}})
    assert (rebuilt.name, rebuilt.msg, rebuilt.user) == ("app", "hi", "u1")  # type: ignore[attr-defined]


def test_any_json_object_rebuilds() -> None:
    """Missing or mistyped fields fall back to LogRecord's defaults instead of raising."""
    before = time.time()
    rebuilt = to_log_record({"levelno": "high", "line": None, "@timestamp": "yesterday", "exception": "x"})
    assert (rebuilt.name, rebuilt.levelno, rebuilt.lineno, rebuilt.exc_text) == ("root", 0, 0, None)
    assert rebuilt.created >= before
    assert logging.Formatter(FORMAT).format(rebuilt)


def test_a_handled_record_reaches_handlers_as_a_local_one(logger: logging.Logger) -> None:
    """Logger.handle passes a rebuilt record to the handlers and their filters like a local record."""
    keep = Keep()
    keep.addFilter(lambda record: record.levelno >= logging.WARNING)
    logger.addHandler(keep)
    logger.handle(to_log_record({"logger": logger.name, "level": "INFO", "levelno": 20, "message": "quiet"}))
    logger.handle(to_log_record({"logger": logger.name, "level": "ERROR", "levelno": 40, "message": "loud"}))
    assert [record.getMessage() for record in keep.records] == ["loud"]
    assert sys.exc_info() == (None, None, None)
