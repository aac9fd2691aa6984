"""RedisHandler: the stdlib ``logging.Handler`` facade, and the caller's side of the data path.

On the application's thread a record is admitted (counted, or dropped and
counted), turned into a schema-1 document, encoded, framed and handed to the
intake. Everything past the intake happens on the runtime loop (``shipper``, ``drain``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVarTuple

from redis_log_handler._schema.call_sites import CallSiteEncoder
from redis_log_handler._schema.document import stdlib_document
from redis_log_handler._schema.encoding import DocumentEncoder
from redis_log_handler._schema.sources import Source, structlog_document, wrapped_structlog_event
from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.diagnostics import describe, report
from redis_log_handler._shared.fork import after_fork_in_child, catch_up
from redis_log_handler._shared.json_codec import safe_str
from redis_log_handler._shared.resp import frame

from .exit import register_closeable
from .live import register_live
from .reentry import inside
from .runtime import keep_inherited
from .settings import ClientFactory, WriterSettings
from .shipper import Shipper
from .sigterm import prepare_for_sigterm
from .transport.protocol import TransportFactory
from .uwsgi import takes_over_master_records

__all__ = ["RedisHandler"]

_Arguments = TypeVarTuple("_Arguments")
# Filterer.filter returns the record it passes from Python 3.12 on, True before.
_FILTER_RETURNS_RECORDS = sys.version_info >= (3, 12)


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
        heartbeat: float | None = None,
        schema: str = "v1",
        shards: int = 1,
        wait_replicas: int = 0,
        transport: TransportFactory | None = None,
    ) -> None:
        # Validate before Handler.__init__ registers the handler with logging.
        arguments = locals()
        self.settings = WriterSettings.build(**{name: arguments[name] for name in WriterSettings.names()})
        super().__init__(level)
        assert isinstance(self.settings.fields, dict)
        self._encoder = DocumentEncoder(self.settings.fields, self.settings.max_document_bytes, self.settings.schema)
        self._call_sites = CallSiteEncoder(self._encoder, self.settings.max_document_bytes, self.settings.schema)
        self._shipper = Shipper(self.settings)
        after_fork_in_child(self._reset_in_child)
        register_closeable(self)
        register_live(self)
        prepare_for_sigterm()  # uvicorn and hypercorn end a worker by SIGTERM's default action

    def _reset_in_child(self) -> None:
        """In a forked child: start over with an empty buffer and fresh counters.

        The parent still owns and sends what it had buffered. The inherited
        client, task and spill files are never touched (nor garbage-collected:
        see keep_inherited).
        """
        parent = self._shipper
        keep_inherited(parent, *parent.inherited())
        self._shipper = Shipper(self.settings, replay_now=False)
        if not parent.started and parent.intake and takes_over_master_records():
            self._shipper.adopt(parent)

    def _after_unhooked_fork(self) -> Shipper:
        """A record made in another process than the shipper's: a fork that ran no at-fork hooks. Start over."""
        catch_up()
        return self._shipper

    @staticmethod
    def _refused(shipper: Shipper) -> bool:
        """Whether an accepted record must not be buffered (then counted as dropped): see ``reentry``."""
        if inside.active:
            shipper.ledger.internal.increment()
            return True
        if shipper.closed:
            shipper.refuse_after_close()
            return True
        return False

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter and emit *record* without taking ``Handler.lock``.

        The stdlib default serialises every logging thread on the handler lock;
        emit here needs no lock (the buffer and counters are thread-safe), and
        without it concurrent callers do not convoy. Without filters, what
        ``Filterer.filter`` would answer is returned without calling it.
        """
        if not self.filters:
            self.emit(record)
            return record if _FILTER_RETURNS_RECORDS else True
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may return a new record
            record = result
        if result:
            self.emit(record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Encode *record* and buffer it; never raises, never waits on Redis."""
        shipper = self._shipper
        if record.process != shipper.pid and record.process is not None:
            shipper = self._after_unhooked_fork()
        event_dict = wrapped_structlog_event(record) if type(record.msg) is dict else None  # skips a call for text
        shipper.ledger.accepted["stdlib" if event_dict is None else "structlog"].increment()
        if inside.active or shipper.closed:
            self._refused(shipper)
            return
        try:
            framed: bytes | None
            if event_dict is not None:
                framed = frame(self._encoder.encode(structlog_document(event_dict, record.levelname.lower(), record)))
            else:
                try:
                    message = self.format(record) if self.formatter is not None else record.getMessage()
                except Exception:
                    # A bad format string or argument must not lose the record:
                    # send the raw message and report the error.
                    message = f"{safe_str(record.msg)} (message formatting failed; args: {safe_str(record.args)})"
                    self.handleError(record)
                framed = self._call_sites.frame(record, message)  # None: it needs the whole document
                if framed is None:
                    framed = frame(self._encoder.encode(stdlib_document(record, message)))
            shipper.intake.put(framed)
        except Exception:
            shipper.ledger.failed.increment()
            self.handleError(record)

    def submit(
        self, source: Source, pid: int, build: Callable[[*_Arguments], dict[str, Any]], *arguments: *_Arguments
    ) -> None:
        """Buffer the document ``build(*arguments)`` from an adapter; never raises, never waits on Redis.

        For :class:`LoguruSink` and :class:`StructlogProcessor` (*source* is
        ``"loguru"`` or ``"structlog"``; *pid* is the process the record was
        made in): they share the handler's buffer, counters and writer.
        """
        shipper = self._shipper
        accepted = False
        try:
            if pid != shipper.pid:
                shipper = self._after_unhooked_fork()
            shipper.ledger.accepted[source].increment()
            accepted = True
            if self._refused(shipper):
                return
            shipper.intake.put(frame(self._encoder.encode(build(*arguments))))
        except Exception as exc:
            if accepted:  # else it is not counted anywhere yet: an unknown source
                shipper.ledger.failed.increment()
            shipper.ledger.handler_errors.increment()
            report(f"{source}-error", f"a {source} record could not be buffered and was dropped: {describe(exc)}")

    def handleError(self, record: logging.LogRecord) -> None:
        """Count the error and report it on stderr at most once per interval (with a traceback)."""
        self._shipper.ledger.handler_errors.increment()
        if report("emit", f"error while handling a record from logger {record.name!r} (details below)"):
            super().handleError(record)

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override] # the result is the contract
        """Wait until every record accepted before the call is in Redis.

        Returns True once they all are, False if *timeout* seconds passed first
        or if any of them was dropped. ``None`` waits at most ``close_timeout``
        (never forever: ``logging.shutdown()`` calls ``flush()``).
        """
        catch_up()  # a child forked without at-fork hooks must not wait on its parent's runtime
        return self._shipper.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """The same as :meth:`flush`, for code running on its own event loop (does not block it)."""
        catch_up()
        return await self._shipper.aflush(timeout)

    def close(self) -> None:
        """Write what is buffered (within ``close_timeout``) and stop this handler's drain task; idempotent."""
        try:
            catch_up()
            self._shipper.begin_close(time.monotonic())()
        finally:
            super().close()

    def _begin_close(self, now: float, timeout: float | None = None) -> Callable[[], None]:
        """Start closing (the exit hook closes every handler at once); returns a function that waits for it."""
        return self._shipper.begin_close(now, timeout)

    def stats(self) -> dict[str, Any]:
        """Return the handler's counters (see the configuration reference for each one)."""
        catch_up()
        return self._shipper.stats()

    def __repr__(self) -> str:
        settings = self.settings
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {settings.mode} {settings.key!r} at {redact_url(settings.url or '')} ({level})>"
