"""The record document (schema version 1): building it from a LogRecord and encoding it within a size limit."""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._fork import after_fork_in_child
from ._json import dumps, json_safe, safe_str

__all__ = [
    "HOST",
    "SCHEMA_FIELDS",
    "SCHEMA_VERSION",
    "DocumentEncoder",
    "document_age",
    "exception_info",
    "iso_timestamp",
    "next_record_id",
    "normalize_level",
]

SCHEMA_VERSION = "1"
# Every top-level field a document of this schema can have; static fields may not replace them.
SCHEMA_FIELDS = frozenset(
    {
        "@timestamp", "@version", "level", "levelno", "logger", "message", "source", "module", "function",
        "line", "file", "process", "process_name", "thread", "thread_name", "host", "id", "exception",
        "stack", "extra", "truncated",
    }
)  # fmt: skip
HOST = socket.gethostname()

# Attributes every LogRecord has (plus those Formatter.format adds); anything
# else in record.__dict__ came from ``extra=`` or a filter and goes to "extra".
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Shortened parts end with this marker so a reader sees the cut.
_ELLIPSIS = "…[truncated]"


class _RecordIds:
    """Process-wide record ids: a random producer id (new after fork) and a sequence number."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.producer = uuid.uuid4().hex[:16]
        self._sequence = itertools.count(1)
        self.next = self._sequence.__next__  # atomic under the GIL: no lock on the hot path


_ids = _RecordIds()
after_fork_in_child(_ids.reset)


def next_record_id() -> str:
    """Return an id unique across processes and restarts: ``<producer>-<sequence>``."""
    return f"{_ids.producer}-{_ids.next()}"


# Formatting the date part once per second keeps the hot path cheap; the
# cached pair is replaced as one tuple, so readers on other threads never see
# a torn value.
_second_cache: tuple[int, str] = (-1, "")


def document_age(document: bytes) -> float | None:
    """Seconds since the record in an encoded *document* was logged, or None if it carries no readable time."""
    try:
        logged = datetime.datetime.fromisoformat(json.loads(document)["@timestamp"])
    except (ValueError, KeyError, TypeError):
        return None
    return max(0.0, time.time() - logged.timestamp())


def iso_timestamp(created: float) -> str:
    """Format a POSIX time as ISO-8601 UTC with microseconds and ``Z``."""
    global _second_cache
    second = int(created)
    micros = round((created - second) * 1_000_000)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    cached_second, prefix = _second_cache
    if cached_second != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
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


def _cut(text: str, max_bytes: int) -> str:
    """Shorten *text* to at most *max_bytes* UTF-8 bytes, marker included."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    keep = max(0, max_bytes - len(_ELLIPSIS.encode("utf-8")))
    return raw[:keep].decode("utf-8", "ignore") + _ELLIPSIS


class DocumentEncoder:
    """Turns documents into UTF-8 JSON bytes no larger than ``max_bytes`` when that can be done.

    The encoder never raises for a bad value: anything JSON cannot encode is
    turned into a string, and an oversized document is cut down (message,
    traceback and extra shortened) and marked ``"truncated": true``.
    """

    __slots__ = ("_fields", "_max_bytes")

    def __init__(self, fields: Mapping[str, Any], max_bytes: int) -> None:
        self._fields = dict(fields)
        self._max_bytes = max_bytes

    def stdlib_document(self, record: logging.LogRecord, message: str) -> dict[str, Any]:
        """Map a stdlib LogRecord onto the schema-1 document."""
        attributes = record.__dict__
        extra_keys = attributes.keys() - _RECORD_ATTRIBUTES
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            exception = exception_info(exc_info[0], exc_info[1], record.exc_text)
        else:
            exception = None
        return {
            "@timestamp": iso_timestamp(record.created),
            "@version": SCHEMA_VERSION,
            "level": record.levelname,
            "levelno": record.levelno,
            "logger": record.name,
            "message": message,
            "source": "stdlib",
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "file": record.pathname,
            "process": record.process,
            "process_name": record.processName,
            "thread": record.thread,
            "thread_name": record.threadName,
            "host": HOST,
            "id": next_record_id(),
            "exception": exception,
            "stack": record.stack_info,
            "extra": {key: json_safe(attributes[key]) for key in extra_keys} if extra_keys else {},
        }

    def encode(self, document: dict[str, Any]) -> bytes:
        """Add the static fields to *document* and encode it, repairing what JSON cannot hold and cutting it to size."""
        if self._fields:
            document.update(self._fields)
        try:
            data = dumps(document)
        except Exception:
            # Only the fields that come from the application can be at fault:
            # lone surrogates in a string, or a non-string in a string field.
            document = json_safe(document)
            data = dumps(document)
        if len(data) > self._max_bytes:
            data = self._truncate(document, len(data))
        return data

    def _truncate(self, document: dict[str, Any], size: int) -> bytes:
        document = dict(document)
        document["truncated"] = True
        parts = _ShortenableParts(document)
        excess = size - self._max_bytes + 64  # room for the marker field and escapes
        # Shorten the largest parts first; each loses what it must, down to a floor.
        for length, shorten in sorted(parts, key=lambda part: part[0], reverse=True):
            if excess <= 0:
                break
            target = max(_PART_FLOOR, length - excess)
            if target < length:
                shorten(target)
                excess -= length - target
        data = dumps(document)
        if len(data) > self._max_bytes:
            # Many medium parts: shrink them all to the floor. What is left is
            # metadata and static fields, which validation keeps small.
            for _, shorten in parts:
                shorten(_PART_FLOOR)
            data = dumps(document)
        return data


_PART_FLOOR = 256  # bytes a shortened part keeps at least


class _ShortenableParts(list[tuple[int, Callable[[int], None]]]):
    """The parts of a document that may be cut: (size in bytes, function cutting it to n bytes).

    They are the message, the exception's message and traceback, the stack
    and the extra fields; the document (and its exception object) are copied
    first so the caller's values are not changed.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__()
        self._add_text(document, "message")
        exception = document.get("exception")
        if isinstance(exception, dict):
            exception = document["exception"] = dict(exception)
            self._add_text(exception, "message")
            self._add_text(exception, "traceback")
        if isinstance(document.get("stack"), str):
            self._add_text(document, "stack")
        extra = document.get("extra")
        if extra:
            extra_json = dumps(extra).decode("utf-8")

            def shorten_extra(max_bytes: int) -> None:
                document["extra"] = _shorten_extra(extra, extra_json, max_bytes)

            self.append((len(extra_json), shorten_extra))

    def _add_text(self, container: dict[str, Any], name: str) -> None:
        text = safe_str(container.get(name, ""))

        def shorten(max_bytes: int) -> None:
            container[name] = _cut(text, max_bytes)

        self.append((len(text.encode("utf-8")), shorten))


def _shorten_extra(extra: dict[str, Any], extra_json: str, max_bytes: int) -> dict[str, Any]:
    """Keep every key of *extra*, cutting the largest values to fit *max_bytes* in total."""
    if len(extra) * 48 > max_bytes:
        return {"_truncated": _cut(extra_json, max_bytes)}
    budget = max_bytes // len(extra)
    shortened: dict[str, Any] = {}
    for key, value in extra.items():
        encoded = dumps(value).decode("utf-8")
        shortened[key] = value if len(encoded) <= budget else _cut(encoded, budget)
    return shortened
