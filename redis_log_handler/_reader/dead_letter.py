"""Entries that cannot be handled: the dead-letter stream, where they are kept to look into and replay.

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

import redis

from redis_log_handler._schema.document import iso_timestamp

from .entries import Entry, payload_of

__all__ = ["DeadLetters"]


class DeadLetters:
    """Writes entries that cannot be handled to the dead-letter stream, and counts them."""

    def __init__(self, key: str, source_key: str) -> None:
        self._key = key
        self._source_key = source_key
        self.count = 0

    def add(self, client: redis.Redis, entry: Entry, reason: str) -> None:
        """Append *entry* with *reason*; raises ``redis.RedisError`` if it could not be written."""
        payload = payload_of(entry)
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
