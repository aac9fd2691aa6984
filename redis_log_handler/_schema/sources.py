"""The sources of records, and Loguru records and structlog event dicts mapped onto the schema-1 document.

No framework imports.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from redis_log_handler._shared.json_codec import json_safe, safe_str

from .document import exception_info, iso_timestamp, new_document, normalize_level

__all__ = ["SOURCES", "Source", "event_level", "loguru_document", "structlog_document", "wrapped_structlog_event"]

Source = Literal["stdlib", "loguru", "structlog"]
SOURCES: tuple[Source, ...] = ("stdlib", "loguru", "structlog")
"""Where a record comes from (its document's ``source``): the one list the counters, metrics and filters use."""


def loguru_document(record: Mapping[str, Any]) -> dict[str, Any]:
    """Map a Loguru record (``message.record``) onto the schema-1 document."""
    level = record["level"]
    exception = record["exception"]
    if exception is not None and (exception.type is not None or exception.value is not None):
        try:
            text = "".join(traceback.format_exception(exception.type, exception.value, exception.traceback))
        except Exception:
            text = None
        exception_object = exception_info(exception.type, exception.value, text)
    else:
        exception_object = None
    process, thread, file = record["process"], record["thread"], record["file"]
    extra = record["extra"]
    # A stdlib record intercepted into Loguru (the InterceptHandler recipe in docs/loguru.md) carries its
    # logger's name as extra["logger_name"]; Loguru's own "name" is only the calling module.
    logger_name = extra.get("logger_name") or record["name"]
    return new_document(
        iso_timestamp(record["time"].timestamp()),  # timestamp (an aware datetime: timestamp() is UTC-based)
        level.name,  # level (custom ones, logger.level("AUDIT", no=25), keep their name and number)
        level.no,  # levelno
        logger_name,  # logger
        record["message"],  # message
        "loguru",  # source
        record["module"],  # module
        record["function"],  # function
        record["line"],  # line
        file.path,  # file
        process.id,  # process
        process.name,  # process_name
        thread.id,  # thread
        thread.name,  # thread_name
        exception_object,  # exception
        None,  # stack
        # bind()/contextualize() values sit at the top of "extra", not nested a level deeper.
        {safe_str(key): json_safe(value) for key, value in extra.items() if key != "logger_name"},  # extra
    )


# Keys the mapping consumes; everything else in the event dict goes to "extra".
_CONSUMED = frozenset(
    {
        "event",
        "level",
        "log_level",
        "timestamp",
        "logger",
        "logger_name",
        "exc_info",
        "exception",
        "stack",
        "stack_info",
        "pathname",
        "filename",
        "module",
        "func_name",
        "lineno",
        "process",
        "process_name",
        "thread",
        "thread_name",
        "_record",
        "_from_structlog",
    }
)


def _timestamp(value: object) -> str:
    """``@timestamp`` from structlog's ``timestamp`` (ISO text, epoch number or datetime), else now."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return iso_timestamp(moment.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return iso_timestamp(float(value))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return _timestamp(parsed)
    return iso_timestamp(time.time())


def _exception(event_dict: Mapping[str, Any]) -> dict[str, str] | None:
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return exception_info(type(exc_info), exc_info, None)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        return exception_info(exc_info[0], exc_info[1], None)
    rendered = event_dict.get("exception")
    if isinstance(rendered, str) and rendered:
        # Rendered by format_exc_info: the last line is "Type: message".
        last = rendered.rstrip("\n").rsplit("\n", 1)[-1]
        kind, _, message = last.partition(": ")
        return {"type": kind, "message": message, "traceback": rendered.rstrip("\n")}
    if rendered:  # dict_tracebacks: a structure, kept as JSON-safe data
        return {"type": "", "message": "", "traceback": safe_str(json_safe(rendered))}
    return None


def wrapped_structlog_event(record: logging.LogRecord) -> dict[str, Any] | None:
    """The structlog event dict a stdlib record carries, or None.

    ``structlog.stdlib.ProcessorFormatter.wrap_for_formatter`` puts the event
    dict in ``record.msg`` and the bound logger in ``record._logger``.
    """
    msg = record.msg
    return msg if type(msg) is dict and "_logger" in record.__dict__ else None


def event_level(event_dict: Mapping[str, Any], fallback: str) -> tuple[str, int]:
    """The level of a structlog event: ``level`` or ``log_level``, else *fallback* (the method name)."""
    return normalize_level(event_dict.get("level") or event_dict.get("log_level") or fallback)


def _process_name() -> str:
    """The ``multiprocessing`` name of this process, found the way ``logging.LogRecord`` finds it."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        try:
            return str(multiprocessing.current_process().name)
        except Exception:  # noqa: S110 - as LogRecord: the default name is the answer then
            pass
    return "MainProcess"


def structlog_document(
    event_dict: Mapping[str, Any],
    method_name: str,
    record: logging.LogRecord | None = None,
    logger_name: str | None = None,
    call_site: tuple[str, str, int, str] | None = None,
) -> dict[str, Any]:
    """Map a structlog event dict onto the schema-1 document.

    With *record* (an event that reached stdlib logging through
    ``ProcessorFormatter.wrap_for_formatter``), the logger name, level and call
    site come from the record, which stdlib filled in at the real call site.
    Without it, the logger name is the event's ``logger`` key (structlog's
    ``add_logger_name``), else *logger_name* (the wrapped logger's ``name``),
    else the calling module's name, as Loguru names its records; the call site
    is what ``CallsiteParameterAdder`` put in the event, else *call_site*
    (module name, function, line, file of the frame that logged).
    """
    get = event_dict.get
    level, levelno = event_level(event_dict, record.levelname if record else method_name)
    module: Any
    function: Any
    line: Any
    file: Any
    name: Any
    if record is not None:
        name = record.name
        module, function, line, file = record.module, record.funcName, record.lineno, record.pathname
        process, process_name = record.process, record.processName
        thread, thread_name = record.thread, record.threadName
        created = get("timestamp", record.created)
    else:
        name = get("logger") or get("logger_name") or logger_name
        module, function, line, file = get("module"), get("func_name"), get("lineno"), get("pathname")
        if call_site is not None:
            name = name or call_site[0]
            function, line, file = call_site[1:]
            module = module or os.path.splitext(os.path.basename(file))[0]  # as stdlib's LogRecord.module
        current = threading.current_thread()
        process = get("process", os.getpid())
        process_name = get("process_name") or _process_name()
        thread, thread_name = get("thread", current.ident), get("thread_name", current.name)
        created = get("timestamp")
    extra = {safe_str(key): json_safe(value) for key, value in event_dict.items() if key not in _CONSUMED}
    return new_document(
        _timestamp(created),  # timestamp
        level,
        levelno,
        None if name is None else safe_str(name),  # logger
        safe_str(get("event", "")),  # message
        "structlog",  # source
        module,
        function,
        line,
        file,
        process,
        process_name,
        thread,
        thread_name,
        _exception(event_dict),  # exception
        get("stack") or get("stack_info") or None,  # stack
        extra,
    )
