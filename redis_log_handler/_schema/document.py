"""The record document (schema version 1): its fields, the one builder every source uses, and the stdlib mapping.

Loguru records and structlog events are mapped in ``sources``, encoding within
a size limit is in ``encoding``.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import re
import socket
import time
import traceback
import uuid
from collections.abc import Iterable
from typing import Any

from redis_log_handler._shared.fork import after_fork_in_child
from redis_log_handler._shared.json_codec import json_safe, safe_str

from .trace import current_trace

__all__ = [
    "HOST",
    "RECORD_ATTRIBUTES",
    "SCHEMA_FIELDS",
    "SCHEMA_VERSION",
    "dates",
    "document_age",
    "exception_info",
    "iso_timestamp",
    "new_document",
    "normalize_level",
    "producer_id",
    "record_ids",
    "stdlib_document",
]

SCHEMA_VERSION = "1"
# Every top-level field a document of this schema can have; static fields may not replace them.
SCHEMA_FIELDS = frozenset(
    {
        "@timestamp", "@version", "level", "levelno", "logger", "message", "source", "module", "function",
        "line", "file", "process", "process_name", "thread", "thread_name", "host", "id", "exception",
        "stack", "extra", "truncated", "trace_id", "span_id", "trace_flags",
    }
)  # fmt: skip
HOST = socket.gethostname()

# Attributes every LogRecord has (plus those Formatter.format adds); anything
# else in record.__dict__ came from ``extra=`` or a filter and goes to "extra".
RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class _RecordIds:
    """Process-wide record ids: a random producer id (new after fork) and a sequence number."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.producer = uuid.uuid4().hex[:16]
        self.producer_bytes = self.producer.encode()
        self._sequence = itertools.count(1)
        self.next = self._sequence.__next__  # atomic under the GIL: no lock on the hot path


record_ids = _RecordIds()
after_fork_in_child(record_ids.reset)


def producer_id() -> str:
    """This process's producer id: the first part of its records' ids (new after fork)."""
    return record_ids.producer


class _Dates:
    """The date part of timestamps, formatted once per second: it keeps the hot path cheap.

    ``current`` is ``(second, "YYYY-MM-DDTHH:MM:SS", the same as bytes with the "." that follows it)``,
    the text for :func:`iso_timestamp` and the bytes for the call-site way (``call_sites``). It is replaced
    as one tuple, so readers on other threads never see a torn value.
    """

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: tuple[int, str, bytes] = (-1, "", b"")

    def format(self, second: int) -> tuple[int, str, bytes]:
        """Format *second*'s date part, keep it as the current one and return it."""
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.current = (second, text, f"{text}.".encode())
        return self.current


dates = _Dates()


def document_age(document: bytes) -> float | None:
    """Seconds since the record in an encoded *document* was logged, or None if it carries no readable time."""
    try:
        logged = datetime.datetime.fromisoformat(json.loads(document)["@timestamp"])
    except (ValueError, KeyError, TypeError):
        return None
    return max(0.0, time.time() - logged.timestamp())


def iso_timestamp(created: float, msecs: float | None = None) -> str:
    """Format a POSIX time as ISO-8601 UTC with microseconds and ``Z``.

    With a LogRecord's *msecs*, the milliseconds are exactly those the record
    formats with (``%(msecs)03d``, ``asctime``), even where the float
    ``created`` rounds across a millisecond: a consumer rebuilding the record
    then writes the same line as the producer would have. Rounding only ever
    crosses upwards (the time is then in the last microsecond of the record's
    millisecond), so the time written is that microsecond, ``.xxx999``: the
    timestamps of records logged one after the other never go backwards.
    """
    second = int(created)
    micros = round((created - second) * 1_000_000)
    if msecs is not None and micros // 1000 != msecs:
        # Rounding crossed a millisecond (or the second): keep the record's own milliseconds, at their end.
        micros = int(msecs) * 1000 + 999
    elif micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    cached_second, prefix, _ = dates.current
    if cached_second != second:
        _, prefix, _ = dates.format(second)
    return f"{prefix}.{micros:06d}Z"


_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR"}


def normalize_level(level: object) -> tuple[str, int]:
    """Return the stdlib spelling of a level name or number and its number (0 when unknown).

    ``info`` becomes ``INFO``, ``warn`` ``WARNING``, ``fatal`` ``CRITICAL``, ``exception`` ``ERROR``;
    names registered with ``logging.addLevelName`` are known too.
    """
    if isinstance(level, int) and not isinstance(level, bool):
        return logging.getLevelName(level), level
    name = safe_str(level).upper()
    name = _LEVEL_ALIASES.get(name, name)
    number = logging.getLevelName(name)  # a number for known names, else "Level <name>"
    return name, number if isinstance(number, int) else 0


def exception_info(
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    traceback_text: str | None,
) -> dict[str, str] | None:
    """Build the ``exception`` object of the schema, or None when there is no exception."""
    if exc_type is None and exc is None:
        return None
    if exc_type is None:
        exc_type = type(exc)  # type: ignore[assignment]
    module = getattr(exc_type, "__module__", None)
    name = getattr(exc_type, "__qualname__", None) or safe_str(exc_type)
    if module and module != "builtins":
        name = f"{module}.{name}"
    if traceback_text is None:
        try:
            traceback_text = "".join(traceback.format_exception(exc_type, exc, exc.__traceback__ if exc else None))
        except Exception:
            traceback_text = ""
    return {
        "type": safe_str(name),
        "message": "" if exc is None else safe_str(exc),
        "traceback": safe_str(traceback_text.rstrip("\n")),
    }


def new_document(
    timestamp: str,
    level: str,
    levelno: int,
    logger: str | None,
    message: str,
    source: str,
    module: str | None,
    function: str | None,
    line: int | None,
    file: str | None,
    process: int | None,
    process_name: str | None,
    thread: int | None,
    thread_name: str | None,
    exception: dict[str, str] | None,
    stack: str | None,
    extra: dict[str, Any],
    *,
    record_id: str | None = None,
) -> dict[str, Any]:
    """The schema-1 document: every source (stdlib, Loguru, structlog) builds it here, with a new record id.

    The sources call it positionally, each argument commented with its name:
    passing these 17 arguments by keyword costs a tenth of what the handler adds
    to a logging call (docs/benchmarks.md, "Figures behind the code").

    *record_id* replaces the new id (``call_sites`` encodes a document with a stand-in for it).

    With a valid OpenTelemetry span current on this thread, the document also
    carries its ``trace_id``, ``span_id`` and ``trace_flags`` (see ``trace``).
    """
    document = {
        "@timestamp": timestamp,
        "@version": SCHEMA_VERSION,
        "level": level,
        "levelno": levelno,
        "logger": logger,
        "message": message,
        "source": source,
        "module": module,
        "function": function,
        "line": line,
        "file": file,
        "process": process,
        "process_name": process_name,
        "thread": thread,
        "thread_name": thread_name,
        "host": HOST,
        "id": record_id or f"{record_ids.producer}-{record_ids.next()}",
        "exception": exception,
        "stack": stack,
        "extra": extra,
    }
    if current_trace is not None:
        trace = current_trace()
        if trace is not None:
            document["trace_id"], document["span_id"], document["trace_flags"] = trace
    return document


def stdlib_document(record: logging.LogRecord, message: str) -> dict[str, Any]:
    """Map a stdlib LogRecord onto the schema-1 document (*message* is the formatted message)."""
    attributes = record.__dict__
    extra_keys = attributes.keys() - RECORD_ATTRIBUTES
    exc_info = record.exc_info
    exception = exception_info(exc_info[0], exc_info[1], record.exc_text) if exc_info and exc_info[0] else None
    return new_document(
        iso_timestamp(record.created, record.msecs),  # timestamp
        record.levelname,  # level
        record.levelno,  # levelno
        record.name,  # logger
        message,
        "stdlib",  # source
        record.module,  # module
        record.funcName,  # function
        record.lineno,  # line
        record.pathname,  # file
        record.process,  # process
        record.processName,  # process_name
        record.thread,  # thread
        record.threadName,  # thread_name
        exception,
        record.stack_info,  # stack
        _extra(attributes, extra_keys, record.msg) if extra_keys else {},  # extra
    )


_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # terminal colours and styles (SGR escapes)


def _extra(attributes: dict[str, Any], keys: Iterable[str], msg: object) -> dict[str, Any]:
    """A stdlib record's extra fields, JSON-safe, without a colour variant of its message.

    uvicorn logs each record with ``extra={"color_message": ...}``: the format string again, with terminal
    colours, for its own console formatter. It repeats the message, so it is left out (docs/schema.md).
    """
    extra = {}
    for key in keys:
        value = attributes[key]
        if type(value) is str and "\x1b[" in value and _COLOURS.sub("", value) == msg:
            continue
        extra[key] = json_safe(value)
    return extra
