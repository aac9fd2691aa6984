"""Trace context: the OpenTelemetry span current on the logging thread, when ``opentelemetry-api`` is installed.

The API is looked up once, at import. Without it ``current_trace`` is None and
a document costs one comparison more. With it, a record logged outside any
span costs one context-variable read (about 0.1 µs): OpenTelemetry's current
context is empty until something (a span, baggage) is set in it. Only a
non-empty context is asked for its span. The API alone is enough: whatever SDK
or instrumentation the application uses sets the current span through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["current_trace", "trace_fields"]

current_trace: Callable[[], tuple[str, str, int] | None] | None
try:
    from opentelemetry.context import get_current as _current_context
    from opentelemetry.trace import get_current_span as _current_span
except ImportError:  # the application does not use OpenTelemetry
    current_trace = None
else:

    def current_trace() -> tuple[str, str, int] | None:
        """The trace fields of the span current on this thread (or task), or None if there is no valid one."""
        if not _current_context():  # empty: no span (a Context is a dict)
            return None
        return trace_fields(_current_span())


def trace_fields(span: Any) -> tuple[str, str, int] | None:
    """``trace_id`` (32 hex digits), ``span_id`` (16) and ``trace_flags`` of *span*, or None if it is not valid."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x"), int(context.trace_flags)
