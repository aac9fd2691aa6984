"""The ECS preset: a schema-1 document as an Elastic Common Schema document, and back.

Laid out as the ecs-logging specification (``elastic/ecs-logging``,
``spec/spec.json``) and ``ecs-logging-python`` do: ``@timestamp``,
``log.level``, ``message`` and ``ecs.version`` as top-level dotted keys, the
rest nested (``log.logger``, ``log.origin.file.name``/``.line``,
``log.origin.function``, ``process.pid``/``.name``, ``process.thread.id``/``.name``,
``host.hostname``, ``error.type``/``.message``/``.stack_trace``,
``event.id`` (the record id), ``event.dataset`` (the logger name),
``trace.id``, ``span.id``). Static ``fields`` go to ``labels``. What ECS has
no field for (the source framework, the level number, ``extra``, the stack
of ``stack_info``, ``trace_flags``, ``truncated``) goes under the namespace
``redis_log_bridge``, so that ``from_ecs`` rebuilds the schema-1 document.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ECS_VERSION", "NAMESPACE", "from_ecs", "is_ecs", "to_ecs"]

ECS_VERSION = "1.6.0"
NAMESPACE = "redis_log_bridge"


def to_ecs(document: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ECS layout of the schema-1 *document*, with the static *fields* as labels."""
    get = document.get
    path = get("file")
    ecs: dict[str, Any] = {
        "@timestamp": get("@timestamp"),
        "log.level": str(get("level", "")).lower(),
        "message": get("message"),
        "ecs.version": ECS_VERSION,
        "log": {
            "logger": get("logger"),
            "origin": {
                "file": {"name": os.path.basename(path) if isinstance(path, str) else None, "line": get("line")},
                "function": get("function"),
            },
        },
        "process": {
            "pid": get("process"),
            "name": get("process_name"),
            "thread": {"id": get("thread"), "name": get("thread_name")},
        },
        "host": {"hostname": get("host")},
        "event": {"id": get("id"), "dataset": get("logger")},
    }
    exception = get("exception")
    if isinstance(exception, Mapping):
        ecs["error"] = {
            "type": exception.get("type"),
            "message": exception.get("message"),
            "stack_trace": exception.get("traceback"),
        }
    if get("trace_id"):
        ecs["trace"] = {"id": get("trace_id")}
        ecs["span"] = {"id": get("span_id")}
    if fields:
        ecs["labels"] = dict(fields)
    own = {"source": get("source"), "levelno": get("levelno"), "file_path": path, "module": get("module")}
    for name in ("extra", "stack", "trace_flags", "truncated"):
        if get(name) not in (None, {}):
            own[name] = get(name)
    ecs[NAMESPACE] = own
    return ecs


def is_ecs(document: Mapping[str, Any]) -> bool:
    """Whether *document* is laid out as ECS (any producer's, not only this library's)."""
    return "ecs.version" in document


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def from_ecs(ecs: Mapping[str, Any]) -> dict[str, Any]:
    """The schema-1 document for an ECS *ecs* document (fields it lacks are None, as in schema 1)."""
    log, process, error = _object(ecs.get("log")), _object(ecs.get("process")), _object(ecs.get("error"))
    origin = _object(log.get("origin"))
    file, thread = _object(origin.get("file")), _object(process.get("thread"))
    own = _object(ecs.get(NAMESPACE))
    level = str(ecs.get("log.level") or log.get("level") or "").upper()
    levelno = own.get("levelno")
    if not isinstance(levelno, int):
        number = logging.getLevelName(level)
        levelno = number if isinstance(number, int) else 0
    name = file.get("name")
    path = own.get("file_path") or name
    document: dict[str, Any] = {
        "@timestamp": ecs.get("@timestamp"),
        "@version": "1",
        "level": level,
        "levelno": levelno,
        "logger": log.get("logger"),
        "message": ecs.get("message"),
        "source": own.get("source") or "ecs",
        "module": own.get("module") or (os.path.splitext(name)[0] if isinstance(name, str) else None),
        "function": origin.get("function"),
        "line": file.get("line"),
        "file": path,
        "process": process.get("pid"),
        "process_name": process.get("name"),
        "thread": thread.get("id"),
        "thread_name": thread.get("name"),
        "host": _object(ecs.get("host")).get("hostname"),
        "id": _object(ecs.get("event")).get("id"),
        "exception": (
            {"type": error.get("type"), "message": error.get("message"), "traceback": error.get("stack_trace")}
            if error
            else None
        ),
        "stack": own.get("stack"),
        "extra": own.get("extra") or {},
        **_object(ecs.get("labels")),
    }
    trace_id = _object(ecs.get("trace")).get("id")
    if trace_id:
        document.update(trace_id=trace_id, span_id=_object(ecs.get("span")).get("id"))
        if "trace_flags" in own:
            document["trace_flags"] = own["trace_flags"]
    if own.get("truncated"):
        document["truncated"] = True
    return document
