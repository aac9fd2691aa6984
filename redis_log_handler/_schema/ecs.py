"""The ECS preset: a schema-1 document as an Elastic Common Schema document, and back.

Laid out as Elastic's ``ecs-logging`` formatters write a record (its tests
use them as the oracle): ``@timestamp``, ``log.level``, ``message`` and
``ecs.version`` as top-level dotted keys, the rest nested: ``log.logger``,
``log.original``, ``log.origin.file.name``/``.line``, ``log.origin.function``,
``process.pid``/``.name``, ``process.thread.id``/``.name``, ``error.type``
(the class's own name), ``.message`` and ``.stack_trace``, ``trace.id``,
``span.id``; and every ``extra`` key in its place, a dotted key nested
(``user.id`` under ``user``), as ``ecs-logging`` puts a record's extras.
``error.stack_trace`` is what ``ecs-logging`` writes for the record's
source: the frames of the last traceback (``traceback.format_tb``) for
stdlib and Loguru records, or their ``stack_info``; structlog's rendered
exception, whole, for structlog events.

Beyond ``ecs-logging``: ``host.hostname``, ``event.id`` (the record id, for
Elasticsearch's ``_id``). A static field whose name is an ECS field
(``service.name``, ``service.environment``, ``cloud.region``...) goes to its
place, any other to ``labels``. An extra that would overwrite a field
already placed (``extra={"process": ...}``) stays under the namespace instead
of costing the record (``ecs-logging`` raises there).

What ECS has no field for (the source framework, the level number, the
module and full path, the qualified exception type, the full traceback when
the frames and the exception's line do not rebuild it, ``stack_info``,
``trace_flags``, ``truncated``, the names of the extras) goes under the
namespace ``redis_log_bridge``, so that ``from_ecs`` rebuilds the schema-1
document.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ECS_VERSION", "NAMESPACE", "from_ecs", "is_ecs", "to_ecs"]

ECS_VERSION = "1.6.0"
NAMESPACE = "redis_log_bridge"
# ECS field sets: a static field named "<set>.<field>" is an ECS field and is placed, not labelled.
_FIELD_SETS = frozenset(
    (  # noqa: SIM905 - as a list literal this would take a line per name
        "agent as client cloud container data_stream destination device dns ecs email error event faas file geo "
        "group hash host http log network observer orchestrator organization os package process related rule "
        "server service source span threat tls trace transaction url user user_agent vulnerability"
    ).split()
)
_HEADER = "Traceback (most recent call last):\n"


def _place(target: dict[str, Any], dotted: str, value: Any) -> bool:
    """Put *value* at the dotted path in *target*, as ``ecs-logging`` does; False where a field is in the way."""
    *parents, last = dotted.split(".")
    for name in parents:
        child = target.setdefault(name, {})
        if not isinstance(child, dict):
            return False
        target = child
    if isinstance(value, dict):  # merged key by key, as ecs-logging flattens and de-dots a mapping
        nested = target.setdefault(last, {})
        return isinstance(nested, dict) and all(_place(nested, key, item) for key, item in value.items())
    if last in target:
        return False
    target[last] = value
    return True


def _frames(traceback: str) -> str | None:
    """The frames of the last traceback in *traceback*, as ``traceback.format_tb`` writes them."""
    start = traceback.rfind(_HEADER)
    if start < 0:
        return None
    frames = []
    for line in traceback[start + len(_HEADER) :].split("\n"):
        if not line.startswith("  "):
            break
        frames.append(line)
    return "\n".join(frames) + "\n" if frames else None


def _exception_line(qualified_type: str, message: str) -> str:
    return f"{qualified_type}: {message}" if message else qualified_type


def _error(document: Mapping[str, Any], own: dict[str, Any]) -> dict[str, Any] | None:
    exception, stack = document.get("exception"), document.get("stack")
    if not isinstance(exception, Mapping):
        return {"stack_trace": stack} if stack and document.get("source") != "structlog" else None
    qualified, message = str(exception.get("type") or ""), exception.get("message")
    traceback = exception.get("traceback") or ""
    short = qualified.rsplit(".", 1)[-1]
    if short != qualified:
        own["error_type"] = qualified
    stack_trace: str | None = traceback or None
    if document.get("source") != "structlog":
        stack_trace = _frames(traceback)
        rebuilt = _HEADER + (stack_trace or "") + _exception_line(qualified, str(message or ""))
        if rebuilt != traceback:
            own["traceback"] = traceback
    error = {"type": short, "message": message, "stack_trace": stack_trace}
    return {name: value for name, value in error.items() if value is not None}


def to_ecs(document: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ECS layout of the schema-1 *document*, with the static *fields* placed or labelled."""
    get = document.get
    path = get("file")
    own: dict[str, Any] = {
        "source": get("source"),
        "levelno": get("levelno"),
        "file_path": path,
        "module": get("module"),
    }
    ecs: dict[str, Any] = {
        "@timestamp": get("@timestamp"),
        "log.level": str(get("level", "")).lower(),
        "message": get("message"),
        "ecs.version": ECS_VERSION,
        "log": {
            "logger": get("logger"),
            "original": get("message"),
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
        "event": {"id": get("id")},
    }
    error = _error(document, own)
    if error:
        ecs["error"] = error
    if get("trace_id"):
        ecs["trace"] = {"id": get("trace_id")}
        ecs["span"] = {"id": get("span_id")}
    labels: dict[str, Any] = {}
    for name, value in fields.items():
        if name.split(".", 1)[0] not in _FIELD_SETS or "." not in name or not _place(ecs, name, value):
            labels[name] = value
        else:
            own.setdefault("placed_fields", []).append(name)
    if labels:
        _place(ecs, "labels", labels)
    extra = get("extra") or {}
    if extra:
        own["extra_keys"] = list(extra)
        kept = {name: value for name, value in extra.items() if not _place(ecs, name, value)}
        if kept:
            own["extra"] = kept
    if get("stack") and not (error and "type" not in error):  # not already error.stack_trace
        own["stack"] = get("stack")
    for name in ("trace_flags", "truncated"):
        if get(name) not in (None, {}):
            own[name] = get(name)
    ecs[NAMESPACE] = own
    return ecs


def is_ecs(document: Mapping[str, Any]) -> bool:
    """Whether *document* is laid out as ECS (any producer's, not only this library's)."""
    return "ecs.version" in document


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _at(ecs: Mapping[str, Any], dotted: str) -> Any:
    value: Any = ecs
    for name in dotted.split("."):
        value = _object(value).get(name)
    return value


def _exception(error: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any] | None:
    if "type" not in error:
        return None
    qualified, message = own.get("error_type") or error.get("type"), error.get("message") or ""
    traceback = own.get("traceback")
    if traceback is None:
        stack_trace = error.get("stack_trace") or ""
        traceback = stack_trace if own.get("source") == "structlog" else _HEADER + stack_trace
        if own.get("source") != "structlog":
            traceback += _exception_line(str(qualified), str(message))
    return {"type": qualified, "message": error.get("message"), "traceback": traceback}


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
    kept = _object(own.get("extra"))
    extra = {key: kept[key] if key in kept else _at(ecs, key) for key in own.get("extra_keys") or ()}
    stack = own.get("stack")
    if stack is None and "type" not in error and own.get("source") != "structlog":
        stack = error.get("stack_trace")
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
        "exception": _exception(error, own),
        "stack": stack,
        "extra": extra,
        **_object(ecs.get("labels")),
        **{field: _at(ecs, field) for field in own.get("placed_fields") or ()},
    }
    trace_id = _object(ecs.get("trace")).get("id")
    if trace_id:
        document.update(trace_id=trace_id, span_id=_object(ecs.get("span")).get("id"))
        if "trace_flags" in own:
            document["trace_flags"] = own["trace_flags"]
    if own.get("truncated"):
        document["truncated"] = True
    return document
