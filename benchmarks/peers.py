"""The handlers RedisHandler is measured against, each set up as its documentation recommends for throughput.

Every peer is a factory returning ``(handler, finish)``: ``finish()`` blocks until
every record logged through ``handler`` has reached its destination (Redis, a
TCP sink, or the discarding end of a queue), so all designs are timed end to end.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from redis_log_handler._schema.call_sites import CallSiteEncoder
from redis_log_handler._schema.document import stdlib_document
from redis_log_handler._schema.encoding import DocumentEncoder

Finish = Callable[[], None]


class Unlocked(logging.Handler):
    """A handler whose ``handle`` takes no ``Handler.lock``, as RedisHandler's takes none."""

    def handle(self, record: logging.LogRecord) -> bool:
        """Emit without Handler.lock."""
        if self.filter(record):
            self.emit(record)
            return True
        return False


class Floor(Unlocked):
    """The physical limit: the identical document's bytes, made as RedisHandler makes them, discarded; no lock."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = DocumentEncoder({}, 262_144)
        self._call_sites = CallSiteEncoder(self._encoder, 262_144, "v1")

    def emit(self, record: logging.LogRecord) -> None:
        """Encode the document (framed, from its call site's parts where RedisHandler does), then drop it."""
        message = record.getMessage()
        if self._call_sites.frame(record, message) is None:
            self._encoder.encode(stdlib_document(record, message))


class LockedFloor(Floor):
    """The floor with the stdlib's default ``handle()``, which takes ``Handler.lock`` around emit."""

    handle = logging.Handler.handle  # type: ignore[assignment]


class Discard(logging.Handler):
    """A handler that does nothing with the record."""

    def emit(self, record: logging.LogRecord) -> None:
        """Drop the record."""


def queue_listener() -> tuple[logging.Handler, Finish]:
    """stdlib QueueHandler + QueueListener into a handler that discards (it writes nowhere)."""
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, Discard())
    listener.start()
    return logging.handlers.QueueHandler(records), listener.stop


class SyncRpush(logging.Handler):
    """A typical PyPI Redis handler: one synchronous RPUSH per record inside emit."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__()
        self._client = redis.Redis.from_url(url)
        self._key = key
        self._encoder = DocumentEncoder({}, 262_144)

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record before returning."""
        self._client.rpush(self._key, self._encoder.encode(stdlib_document(record, record.getMessage())))


def sync_rpush(url: str, key: str) -> tuple[logging.Handler, Finish]:
    """Per-record synchronous RPUSH: delivered when emit returns."""
    return SyncRpush(url, key), lambda: None


class CoroutinePerRecord(logging.Handler):
    """The design this project replaces: one run_coroutine_threadsafe(XADD) per record into a loop thread."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        # One connection, as such handlers have: every XADD waits for the previous reply.
        self._client = redis.asyncio.Redis.from_url(url, single_connection_client=True)
        self._key = key
        self._encoder = DocumentEncoder({}, 262_144)
        self._futures: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Schedule one XADD for the record."""
        document = self._encoder.encode(stdlib_document(record, record.getMessage()))
        self._futures.append(
            asyncio.run_coroutine_threadsafe(self._client.xadd(self._key, {"data": document}), self._loop)
        )

    def finish(self) -> None:
        """Wait for every scheduled XADD."""
        for future in self._futures:
            future.result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def coroutine_per_record(url: str, key: str) -> tuple[logging.Handler, Finish]:
    """Per-record run_coroutine_threadsafe into a background loop, one XADD each."""
    handler = CoroutinePerRecord(url, key)
    return handler, handler.finish


def redis_logs(url: str, key: str) -> tuple[logging.Handler, Finish] | None:
    """PyPI redis-logs: RedisStreamLogHandler(batch_size=100), a synchronous pipeline inside emit."""
    try:
        from rlh import RedisStreamLogHandler  # noqa: PLC0415 - optional peer
    except ImportError:
        return None
    handler = RedisStreamLogHandler(
        redis_client=redis.Redis.from_url(url), stream_name=key, batch_size=100, as_json=True
    )
    return handler, handler.close


class _TcpSink:
    """A local TCP server counting newline-terminated events (stands in for Logstash)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.events = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(1 << 16):
                with self._lock:
                    self.events += data.count(b"\n")

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.events < count and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.events < count:
            raise TimeoutError(f"the sink received {self.events} of {count} events")

    def close(self) -> None:
        self._server.close()


def logstash_async(expected: int) -> tuple[logging.Handler, Finish] | None:
    """PyPI python-logstash-async over TCP into a local sink, in-memory queue, tuned for throughput."""
    try:
        from logstash_async.constants import constants  # noqa: PLC0415 - optional peer
        from logstash_async.handler import AsynchronousLogstashHandler  # noqa: PLC0415
    except ImportError:
        return None
    # Its documented knobs: check the queue often, flush often and in large batches.
    constants.QUEUE_CHECK_INTERVAL = 0.01
    constants.QUEUED_EVENTS_FLUSH_INTERVAL = 0.05
    constants.QUEUED_EVENTS_FLUSH_COUNT = 1000
    constants.QUEUED_EVENTS_BATCH_SIZE = 1000
    sink = _TcpSink()
    handler = AsynchronousLogstashHandler("127.0.0.1", sink.port, database_path=None)

    def finish() -> None:
        sink.wait_for(expected, 120)
        handler.close()
        sink.close()

    return handler, finish
