"""JSON encoding: orjson when installed, else the stdlib, and a sanitiser for what neither can encode."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["BACKEND", "dumps", "json_safe", "loads", "safe_str"]

# Integers orjson can write as numbers (int64 and uint64); outside them a
# number becomes its decimal string, with either back-end, so that the document
# does not depend on which one is installed.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# Nesting deeper than this is rendered as a string: it bounds the work done on
# the caller's thread and catches recursive structures without an id() set.
_MAX_DEPTH = 16

_dumps: Callable[[Any], bytes]
try:
    import orjson

    BACKEND = "orjson"
    # orjson writes NaN as null; json_safe() turns non-finite floats into
    # strings first, so both back-ends produce the same document.
    _dumps = orjson.dumps

    def loads(data: bytes | str) -> Any:
        """Decode JSON; raises ``ValueError`` on malformed input.

        orjson refuses a lone surrogate escape (``"\\ud800"``), which JSON
        allows and other producers write: the stdlib parser takes those.
        """
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data)

except ImportError:  # pragma: no cover - exercised by the no-extras tox env
    BACKEND = "json"
    loads = json.loads  # type: ignore[assignment]
    _encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def _dumps(obj: Any) -> bytes:
        return _encoder.encode(obj).encode("utf-8")


def dumps(obj: Any) -> bytes:
    """Encode *obj* (already JSON-safe) as compact UTF-8 JSON; raises on lone surrogates."""
    return _dumps(obj)


def safe_str(value: object) -> str:
    """Return ``str(value)`` as text that encodes as UTF-8, never raising."""
    try:
        text = value if type(value) is str else str(value)
    except Exception:
        try:
            text = object.__repr__(value)
        except Exception:  # pragma: no cover - object.__repr__ does not fail in practice
            return "<unprintable>"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from surrogateescape'd bytes or bad input) become
        # visible \udcxx escapes instead of crashing the writer.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def json_safe(value: object, depth: int = 0) -> Any:
    """Return a copy of *value* made of JSON types only; anything else becomes a string."""
    kind = type(value)
    if kind is str:
        return safe_str(value)
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else str(value)  # type: ignore[operator]
    if value is None or kind is bool:
        return value
    if kind is float:
        return _float(value)  # type: ignore[arg-type]
    if depth >= _MAX_DEPTH:
        return safe_str(value)
    if isinstance(value, Mapping):
        return {safe_str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [json_safe(item, depth + 1) for item in value]  # type: ignore[attr-defined]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, int):  # subclasses such as IntEnum (bool cannot be subclassed)
        return json_safe(int(value))
    if isinstance(value, float):
        return _float(float(value))
    return safe_str(value)
