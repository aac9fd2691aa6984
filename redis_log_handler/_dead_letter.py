"""Entries that cannot be handled: parsing an entry into a document, and the dead-letter stream.

A dead-letter entry keeps what is needed to look into the failure and replay
the record: ``data`` (the original payload, or a stream entry's raw fields as
JSON when it had no ``data`` field), ``error`` (why it could not be handled),
``entry`` (the original entry id, empty for lists and channels), ``key`` (the
key it was read from) and ``time`` (when it was dead-lettered, ISO-8601 UTC).
The dead-letter stream has no length limit: trim it with ``XTRIM`` once its
entries are dealt with.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from ._document import iso_timestamp
from ._ecs import from_ecs, is_ecs
from ._entries import Entry
from ._json import loads

__all__ = ["DeadLetters", "Poison", "parse_entry"]


@dataclass(frozen=True, slots=True)
class Poison:
    """Why an entry is not a record document."""

    reason: str


def _payload(entry: Entry) -> Any:
    """A stream entry's ``data`` field, or a list element or channel message as is (None if missing)."""
    payload = entry[1]
    return payload.get(b"data") if type(payload) is dict else payload


def parse_entry(entry: Entry) -> dict[str, Any] | Poison:
    """The document in *entry*, or :class:`Poison` saying why there is none."""
    payload = _payload(entry)
    if payload is None:
        return Poison("the entry has no 'data' field")
    try:
        document = loads(payload)
    except ValueError as exc:
        return Poison(f"the payload is not JSON ({exc})")
    if type(document) is not dict:
        return Poison(f"the payload is JSON but not an object (a {type(document).__name__})")
    return from_ecs(document) if is_ecs(document) else document


class DeadLetters:
    """Writes entries that cannot be handled to the dead-letter stream, and counts them."""

    def __init__(self, key: str, source_key: str) -> None:
        self._key = key
        self._source_key = source_key
        self.count = 0

    def add(self, client: redis.Redis, entry: Entry, reason: str) -> None:
        """Append *entry* with *reason*; raises ``redis.RedisError`` if it could not be written."""
        payload = _payload(entry)
        if payload is None:
            fields = entry[1] if isinstance(entry[1], dict) else {}
            payload = json.dumps(
                {_decoded(name): _decoded(value) for name, value in fields.items()}, ensure_ascii=False
            )
        client.xadd(
            self._key,
            {
                "data": payload,
                "error": reason,
                "entry": entry[0] or "",
                "key": self._source_key,
                "time": iso_timestamp(time.time()),
            },
        )
        self.count += 1


def _decoded(value: object) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
