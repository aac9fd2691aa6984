"""Trace context: the current OpenTelemetry span's ids on every record, from every framework."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
import structlog
from loguru import logger as loguru_logger

from redis_log_handler import LoguruSink, RedisHandler, StructlogProcessor
from redis_log_handler._schema import document as _document
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream

trace = pytest.importorskip("opentelemetry.trace")

TRACE_ID, SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7


@contextmanager
def in_span(*, sampled: bool = True) -> Iterator[None]:
    """A valid span is current while the block runs (as an instrumented web framework sets one)."""
    context = trace.SpanContext(
        trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=trace.TraceFlags(1 if sampled else 0)
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        yield


def test_every_framework_carries_the_current_span(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: Callable[..., RedisHandler],
    logger: logging.Logger,
) -> None:
    """stdlib, Loguru and structlog records logged inside a span get its ids; outside one, no trace fields."""
    handler = make_handler(url=redis_server.url, key=key)
    logger.addHandler(handler)
    loguru_logger.remove()
    loguru_logger.add(LoguruSink(handler))
    structlog.configure(processors=[StructlogProcessor(handler), structlog.processors.JSONRenderer()])
    try:
        with in_span():
            logger.info("stdlib")
            loguru_logger.info("loguru")
            structlog.get_logger().info("structlog")
        with in_span(sampled=False):
            logger.info("not sampled")
        logger.info("no span")
        assert handler.flush(10)
    finally:
        loguru_logger.remove()
        structlog.reset_defaults()
    documents = {document["message"]: document for document in read_stream(client, key)}
    for message in ("stdlib", "loguru", "structlog"):
        document = documents[message]
        assert (document["trace_id"], document["span_id"], document["trace_flags"]) == (
            "0af7651916cd43dd8448eb211c80319c",
            "00f067aa0ba902b7",
            1,
        )
    assert documents["not sampled"]["trace_flags"] == 0
    assert not {"trace_id", "span_id", "trace_flags"} & documents["no span"].keys()


def test_without_opentelemetry_nothing_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the API absent (current_trace None) documents have no trace fields, even inside a span."""
    monkeypatch.setattr(_document, "current_trace", None)
    with in_span():
        document = _document.stdlib_document(logging.makeLogRecord({"msg": "x"}), "x")
    assert "trace_id" not in document


def test_static_fields_may_not_take_the_trace_names() -> None:
    """trace_id, span_id and trace_flags are schema fields: static fields cannot replace them."""
    for name in ("trace_id", "span_id", "trace_flags"):
        with pytest.raises(ValueError, match="may not replace the schema field"):
            RedisHandler(fields={name: "x"})
