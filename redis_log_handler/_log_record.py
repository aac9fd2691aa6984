"""The reverse of the stdlib mapping: a schema-1 document rebuilt as a ``logging.LogRecord``.

The rebuilt record formats as the producer's own record would have: the same
``asctime`` (``created`` and ``msecs`` come from ``@timestamp``), the same
location fields, and the traceback in ``exc_text``, which ``Formatter.format``
appends as it appends a traceback it formatted itself.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["to_log_record"]

# Attributes a LogRecord has, plus those Formatter.format adds: an ``extra``
# key with one of these names would overwrite the record's own field, so it is
# left out (``Logger.makeRecord`` refuses such extras with a KeyError).
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _time(timestamp: object) -> tuple[float, float]:
    """``created`` and ``msecs`` from an ISO-8601 ``@timestamp`` (now, for a missing or unreadable one)."""
    try:
        moment = datetime.datetime.fromisoformat(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        moment = datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    # Whole microseconds since the epoch, so created and msecs agree exactly.
    micros = (moment - _EPOCH) // datetime.timedelta(microseconds=1)
    return micros / 1_000_000, float(micros % 1_000_000 // 1000)


def _int_or(value: object, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_or(value: object, default: str | None) -> str | None:
    return value if isinstance(value, str) else default


def to_log_record(document: Mapping[str, Any]) -> logging.LogRecord:
    """Rebuild a schema-1 *document* as a ``logging.LogRecord``, ready for ``Logger.handle``.

    ``msg`` is the document's message with no ``args`` (it was formatted by the
    producer); ``exc_text`` carries the traceback and ``stack_info`` the stack.
    Every ``extra`` key whose name is not a LogRecord attribute becomes an
    attribute, and so do the document's ``source``, ``host`` and ``id``. Fields
    that are missing or of the wrong type fall back to what ``LogRecord`` uses
    for an unknown value, so any JSON object rebuilds.
    """
    created, msecs = _time(document.get("@timestamp"))
    levelno = _int_or(document.get("levelno"), logging.NOTSET)
    assert levelno is not None
    levelname = _str_or(document.get("level"), None) or logging.getLevelName(levelno)
    pathname = _str_or(document.get("file"), None) or ""
    filename = os.path.basename(pathname)
    exception = document.get("exception")
    traceback_text = exception.get("traceback") if isinstance(exception, Mapping) else None
    attributes: dict[str, Any] = {
        "name": _str_or(document.get("logger"), None) or "root",
        "msg": document.get("message", ""),
        "args": (),
        "levelname": levelname,
        "levelno": levelno,
        "pathname": pathname,
        "filename": filename,
        "module": _str_or(document.get("module"), None) or os.path.splitext(filename)[0] or "unknown",
        "exc_info": None,
        "exc_text": traceback_text if isinstance(traceback_text, str) and traceback_text else None,
        "stack_info": _str_or(document.get("stack"), None),
        "lineno": _int_or(document.get("line"), 0),
        "funcName": _str_or(document.get("function"), None),
        "created": created,
        "msecs": msecs,
        "relativeCreated": (created - logging._startTime) * 1000,  # type: ignore[attr-defined]
        "thread": _int_or(document.get("thread"), None),
        "threadName": _str_or(document.get("thread_name"), None),
        "processName": _str_or(document.get("process_name"), None),
        "process": _int_or(document.get("process"), None),
        "taskName": None,
    }
    extra = document.get("extra")
    if isinstance(extra, Mapping):
        attributes.update((name, value) for name, value in extra.items() if name not in _RESERVED)
    for name in ("source", "host", "id"):
        attributes[name] = document.get(name)
    return logging.makeLogRecord(attributes)
