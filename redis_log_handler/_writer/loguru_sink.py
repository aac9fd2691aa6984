"""LoguruSink: a RedisHandler as a Loguru sink (loguru is imported only by the application)."""

from __future__ import annotations

from typing import Any

from redis_log_handler._schema.sources import loguru_document

from .handler import RedisHandler

__all__ = ["LoguruSink"]


class LoguruSink:
    """Send Loguru records into a :class:`RedisHandler`'s buffer (not through stdlib Logger machinery).

    ``logger.add(LoguruSink(handler))`` shares *handler* (its buffer, counters,
    flush/close and runtime) with stdlib logging; ``LoguruSink(url=..., key=...)``
    creates a handler of its own from RedisHandler's keyword arguments.

    Loguru treats an object with ``write`` as a stream sink; this one has
    ``write`` and ``stop`` but no ``flush`` (Loguru would call it after every
    message). ``stop()``, which Loguru calls on ``logger.remove()``, closes the
    handler only if the sink created it: a handler that stdlib logging also
    uses stays open.
    """

    __slots__ = ("_handler", "_owns_handler")

    def __init__(self, handler: RedisHandler | None = None, **handler_options: Any) -> None:
        if handler is None:
            self._handler = RedisHandler(**handler_options)
            self._owns_handler = True
        elif handler_options:
            raise ValueError("handler: pass a RedisHandler or RedisHandler keyword arguments, not both")
        elif not isinstance(handler, RedisHandler):
            raise ValueError(f"handler must be a RedisHandler, got {handler!r}")
        else:
            self._handler = handler
            self._owns_handler = False

    @property
    def handler(self) -> RedisHandler:
        """The handler records go to."""
        return self._handler

    def __call__(self, message: Any) -> None:
        """Buffer the record Loguru passes as ``message.record``; never raises, never waits on Redis."""
        record = message.record
        self._handler.submit("loguru", record["process"].id, loguru_document, record)

    write = __call__

    def stop(self) -> None:
        """Close the handler if this sink created it (Loguru calls this on ``logger.remove()``)."""
        if self._owns_handler:
            self._handler.close()

    def __repr__(self) -> str:
        return f"LoguruSink({self._handler!r})"
