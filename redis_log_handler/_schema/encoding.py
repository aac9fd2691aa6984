"""Encoding a document as UTF-8 JSON within a size limit: what JSON cannot hold is repaired, what is too large cut."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from redis_log_handler._shared.json_codec import dumps, json_safe, safe_str

from .ecs import to_ecs

__all__ = ["DocumentEncoder"]

# Shortened parts end with this marker so a reader sees the cut.
_ELLIPSIS = "…[truncated]"


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

    __slots__ = ("_ecs", "_fields", "_max_bytes")

    def __init__(self, fields: Mapping[str, Any], max_bytes: int, schema: str = "v1") -> None:
        self._fields = dict(fields)
        self._max_bytes = max_bytes
        self._ecs = schema == "ecs"

    def _shaped(self, document: dict[str, Any]) -> dict[str, Any]:
        """*document* as written: schema 1 with the static fields at its top level, or the ECS layout."""
        if self._ecs:
            return to_ecs(document, self._fields)
        if self._fields:
            document.update(self._fields)
        return document

    def encode(self, document: dict[str, Any]) -> bytes:
        """Add the static fields to *document* and encode it, repairing what JSON cannot hold and cutting it to size."""
        if self._ecs:
            shaped = to_ecs(document, self._fields)
        else:  # the common case, spelled out: this runs on the application's thread for every record
            if self._fields:
                document.update(self._fields)
            shaped = document
        try:
            data = dumps(shaped)
        except Exception:
            # Only the fields that come from the application can be at fault:
            # lone surrogates in a string, or a non-string in a string field.
            document = json_safe(document)
            data = dumps(self._shaped(document))
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
        data = dumps(self._shaped(document))
        if len(data) > self._max_bytes:
            # Many medium parts: shrink them all to the floor. What is left is
            # metadata and static fields, which validation keeps small.
            for _, shorten in parts:
                shorten(_PART_FLOOR)
            data = dumps(self._shaped(document))
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
