"""RedisHandler: the stdlib ``logging.Handler`` facade over a Shipper."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVarTuple

from ._config import ClientFactory, Settings, redact_url
from ._counters import Counter
from ._diagnostics import describe, report
from ._document import DocumentEncoder
from ._json import safe_str
from ._runtime import register_closeable
from ._shipper import Shipper
from ._sources import structlog_document

__all__ = ["RedisHandler"]

_Arguments = TypeVarTuple("_Arguments")


class _Reentry(threading.local):
    """Whether this thread is inside a RedisHandler right now.

    Starting the runtime creates an event loop, and asyncio logs while it
    does ("Using selector: ..."); a record logged while the handler is busy
    on the same thread would come straight back into it and wait forever for
    the runtime it is itself starting. Such records are dropped and counted
    as dropped_internal.
    """

    active = False


_reentry = _Reentry()
# Sources other than stdlib logging, counted apart in stats().
_ADAPTER_SOURCES = ("loguru", "structlog")


class RedisHandler(logging.Handler):
    """A logging handler that ships records to Redis from a background event loop.

    ``emit`` only turns the record into a JSON document and appends it to a
    bounded in-memory buffer; it never does network I/O and never waits on
    Redis. Every parameter is described in the configuration reference
    (docs/configuration.md); invalid values raise ``ValueError`` naming the
    parameter. The constructor does no network I/O either, so configuring
    logging works while Redis is down.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str = "logs",
        mode: str = "stream",
        maxlen: int | None = None,
        ttl: int | None = None,
        batch_size: int = 1000,
        flush_interval: float = 0.05,
        buffer_size: int = 100_000,
        overflow: str = "drop_oldest",
        block_timeout: float = 1.0,
        close_timeout: float = 5.0,
        fields: Mapping[str, Any] | None = None,
        max_document_bytes: int = 262_144,
        level: int | str = logging.NOTSET,
        client: ClientFactory | None = None,
        socket_timeout: float = 5.0,
        spill_dir: str | os.PathLike[str] | None = None,
        spill_max_bytes: int = 1 << 30,
        spill_after: float = 5.0,
    ) -> None:
        # Validate before Handler.__init__ registers the handler with logging.
        self.settings = Settings.build(
            url=url,
            key=key,
            mode=mode,
            maxlen=maxlen,
            ttl=ttl,
            batch_size=batch_size,
            flush_interval=flush_interval,
            buffer_size=buffer_size,
            overflow=overflow,
            block_timeout=block_timeout,
            close_timeout=close_timeout,
            fields=fields,
            max_document_bytes=max_document_bytes,
            client=client,
            socket_timeout=socket_timeout,
            spill_dir=spill_dir,
            spill_max_bytes=spill_max_bytes,
            spill_after=spill_after,
        )
        super().__init__(level)
        self._encoder = DocumentEncoder(self.settings.fields, self.settings.max_document_bytes)
        self._shipper = Shipper(self.settings)
        self._accepted_by_source = {source: Counter() for source in _ADAPTER_SOURCES}
        register_closeable(self)

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter and emit *record* without taking ``Handler.lock``.

        The stdlib default serialises every logging thread on the handler lock;
        emit here needs no lock (the buffer and counters are thread-safe), and
        without it concurrent callers do not convoy.
        """
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may return a new record
            record = result
        if result:
            self.emit(record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Encode *record* and buffer it; never raises, never waits on Redis."""
        shipper = self._shipper
        if _reentry.active:
            shipper.count_internal()
            return
        _reentry.active = True
        try:
            # structlog.stdlib: ProcessorFormatter.wrap_for_formatter put the event dict in msg.
            event_dict = record.msg if type(record.msg) is dict and "_logger" in record.__dict__ else None
            if event_dict is not None:
                self._accepted_by_source["structlog"].increment()
            if not shipper.accept(record.process):
                return
            if event_dict is not None:
                document = structlog_document(event_dict, record.levelname.lower(), record)
            else:
                try:
                    message = self.format(record) if self.formatter is not None else record.getMessage()
                except Exception:
                    # A bad format string or argument must not lose the record:
                    # send the raw message and report the error.
                    message = f"{safe_str(record.msg)} (message formatting failed; args: {safe_str(record.args)})"
                    self.handleError(record)
                document = self._encoder.stdlib_document(record, message)
            shipper.put(self._encoder.encode(document))
        except Exception:
            shipper.count_failed()
            self.handleError(record)
        finally:
            _reentry.active = False

    def _submit(
        self, build: Callable[[*_Arguments], dict[str, Any]], arguments: tuple[*_Arguments], source: str, pid: int
    ) -> None:
        """Buffer the document ``build(*arguments)`` from an adapter; never raises, never waits on Redis."""
        self._accepted_by_source[source].increment()
        shipper = self._shipper
        if _reentry.active:
            shipper.count_internal()
            return
        _reentry.active = True
        try:
            if shipper.accept(pid):
                shipper.put(self._encoder.encode(build(*arguments)))
        except Exception as exc:
            shipper.count_failed()
            shipper.count_handler_error()
            report(f"{source}-error", f"a {source} record could not be buffered and was dropped: {describe(exc)}")
        finally:
            _reentry.active = False

    def handleError(self, record: logging.LogRecord) -> None:
        """Count the error and report it on stderr at most once per interval (with a traceback)."""
        self._shipper.count_handler_error()
        if report("emit", f"error while handling a record from logger {record.name!r} (details below)"):
            super().handleError(record)

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override] # the result is the contract
        """Wait until every record accepted before the call is in Redis.

        Returns True once they all are, False if *timeout* seconds passed first
        or if any of them was dropped. ``None`` waits at most ``close_timeout``
        (never forever: ``logging.shutdown()`` calls ``flush()``).
        """
        return self._shipper.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """The same as :meth:`flush`, for code running on its own event loop (does not block it)."""
        return await self._shipper.aflush(timeout)

    def close(self) -> None:
        """Write what is buffered (within ``close_timeout``) and stop this handler's consumer; idempotent."""
        try:
            self._shipper.close()
        finally:
            super().close()

    def _begin_close(self, now: float) -> Callable[[], None]:
        return self._shipper.begin_close(now)

    def stats(self) -> dict[str, Any]:
        """Return the handler's counters (see the configuration reference for each one)."""
        stats = self._shipper.stats()
        by_source = {f"accepted_{source}": counter.value() for source, counter in self._accepted_by_source.items()}
        stats["accepted_stdlib"] = stats["accepted"] - sum(by_source.values())
        stats.update(by_source)
        return stats

    def __repr__(self) -> str:
        settings = self.settings
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {settings.mode} {settings.key!r} at {redact_url(settings.url)} ({level})>"
