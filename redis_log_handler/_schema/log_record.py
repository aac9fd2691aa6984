"""The reverse of the stdlib mapping: a schema-1 document rebuilt as a ``logging.LogRecord``.

The rebuilt record formats as the producer's own record would have: the same
``asctime`` (``created`` and ``msecs`` come from ``@timestamp``), the same
location fields, and the traceback in ``exc_text``, which ``Formatter.format``
appends as it appends a traceback it formatted itself.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from .ecs import from_ecs, is_ecs

__all__ = ["to_log_record"]

# Attributes a LogRecord has, plus those Formatter.format adds: an ``extra``
# key with one of these names would overwrite the record's own field, so it is
# left out (``Logger.makeRecord`` refuses such extras with a KeyError).
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# The handler writes "YYYY-MM-DDTHH:MM:SS.ffffffZ": the seconds part is parsed
# once per second of records (a consumer reads them in time order).
_HANDLER_TIMESTAMP_LENGTH = 27
_second_cache: tuple[str, int] = ("", 0)


def _time(timestamp: object) -> tuple[float, float]:
    """``created`` and ``msecs`` from an ISO-8601 ``@timestamp`` (now, for a missing or unreadable one)."""
    global _second_cache
    if (
        type(timestamp) is str
        and len(timestamp) == _HANDLER_TIMESTAMP_LENGTH
        and timestamp[19] == "."
        and timestamp[26] == "Z"
        and timestamp[20:26].isdigit()
    ):
        prefix, micros = timestamp[:19], int(timestamp[20:26])
        cached, second = _second_cache
        if cached != prefix:
            second = _whole_seconds(prefix + "Z")
            _second_cache = (prefix, second)
        if second >= 0:
            return second + micros / 1_000_000, float(micros // 1000)
    return _parsed_time(timestamp)


def _whole_seconds(timestamp: str) -> int:
    """Seconds since the epoch of an ISO-8601 time without fraction, or -1 if it is not one."""
    try:
        return int((datetime.datetime.fromisoformat(timestamp) - _EPOCH).total_seconds())
    except ValueError:
        return -1


def _parsed_time(timestamp: object) -> tuple[float, float]:
    try:
        moment = datetime.datetime.fromisoformat(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        moment = datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    # Whole microseconds since the epoch, so created and msecs agree exactly.
    micros = (moment - _EPOCH) // datetime.timedelta(microseconds=1)
    return micros / 1_000_000, float(micros % 1_000_000 // 1000)


@functools.lru_cache(maxsize=1024)
def _file_and_module(pathname: str) -> tuple[str, str]:
    filename = os.path.basename(pathname)
    return filename, os.path.splitext(filename)[0] or "unknown"


def _new_record(attributes: dict[str, Any]) -> logging.LogRecord:
    """A LogRecord with exactly *attributes*, through the record factory if the application set one."""
    if logging.getLogRecordFactory() is logging.LogRecord:
        # LogRecord.__init__ would look up the time, thread and process of
        # this process only for them to be overwritten.
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = attributes
        return record
    return logging.makeLogRecord(attributes)


def to_log_record(document: Mapping[str, Any]) -> logging.LogRecord:
    """Rebuild a schema-1 *document* as a ``logging.LogRecord``, ready for ``Logger.handle``.

    ``msg`` is the document's message with no ``args`` (it was formatted by the
    producer); ``exc_text`` carries the traceback and ``stack_info`` the stack.
    Every ``extra`` key whose name is not a LogRecord attribute becomes an
    attribute, and so do the document's ``source``, ``host`` and ``id``. Fields
    that are missing or of the wrong type fall back to what ``LogRecord`` uses
    for an unknown value, so any JSON object rebuilds.
    """
    if is_ecs(document):
        document = from_ecs(document)
    get = document.get
    created, msecs = _time(get("@timestamp"))
    levelno = get("levelno")
    if type(levelno) is not int:
        levelno = logging.NOTSET
    levelname = get("level")
    if type(levelname) is not str:
        levelname = logging.getLevelName(levelno)
    pathname = get("file")
    if type(pathname) is not str:
        pathname = ""
    filename, module = _file_and_module(pathname)
    exception = get("exception")
    traceback_text = exception.get("traceback") if type(exception) is dict else None
    # Unrolled, with type() checks: this runs once per record on the consumer's only thread.
    attributes: dict[str, Any] = {
        "name": name if type(name := get("logger")) is str and name else "root",
        "msg": get("message", ""),
        "args": (),
        "levelname": levelname,
        "levelno": levelno,
        "pathname": pathname,
        "filename": filename,
        "module": given if type(given := get("module")) is str and given else module,
        "exc_info": None,
        "exc_text": traceback_text if type(traceback_text) is str and traceback_text else None,
        "stack_info": stack if type(stack := get("stack")) is str else None,
        "lineno": line if type(line := get("line")) is int else 0,
        "funcName": function if type(function := get("function")) is str else None,
        "created": created,
        "msecs": msecs,
        "relativeCreated": (created - _START_TIME) * 1000,
        "thread": thread if type(thread := get("thread")) is int else None,
        "threadName": thread_name if type(thread_name := get("thread_name")) is str else None,
        "processName": process_name if type(process_name := get("process_name")) is str else None,
        "process": process if type(process := get("process")) is int else None,
        "taskName": None,
    }
    extra = get("extra")
    if extra and type(extra) is dict:
        attributes.update((name, value) for name, value in extra.items() if name not in _RESERVED)
    attributes["source"] = get("source")
    attributes["host"] = get("host")
    attributes["id"] = get("id")
    return _new_record(attributes)


_START_TIME: float = logging._startTime  # type: ignore[attr-defined]
