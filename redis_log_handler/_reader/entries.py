"""What the reader reads: an entry (an id and a payload), entries from a raw XREADGROUP reply, and their documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis_log_handler._schema.ecs import from_ecs, is_ecs
from redis_log_handler._shared.json_codec import loads

__all__ = [
    "Entry",
    "EntryId",
    "Poison",
    "as_text",
    "id_order",
    "parse_entry",
    "payload_of",
    "raw_reply",
    "stream_entries",
]

EntryId = bytes | str
Entry = tuple[EntryId | None, Any]
"""An entry's id (None where the source has none) and its payload: stream fields, or one list/channel element."""


def as_text(value: Any) -> Any:
    """*value* decoded if it is bytes (a raw reply's names and ids), else as it is."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def id_order(entry_id: object) -> tuple[int, int]:
    """A stream entry id ``<ms>-<seq>`` as numbers, which order as the stream does."""
    ms, seq = str(as_text(entry_id)).split("-")
    return int(ms), int(seq)


def raw_reply(response: Any, **_options: Any) -> Any:
    """A response callback that leaves the reply as the parser returned it."""
    return response


def stream_entries(reply: Any) -> list[Entry]:
    """Entries from a raw XREADGROUP reply: ids stay bytes, fields become a dict ({} once deleted).

    The consumer reads XREADGROUP replies raw (``raw_reply``, or a connection
    of its own): at a hundred thousand entries a second, redis-py's generic
    conversion and the ids' decoding cost a tenth of the consumer's time.
    """
    if not reply:
        return []
    # RESP3 (redis-py 8's default) replies with a map of stream -> entries, RESP2 with [[stream, entries]].
    raw = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    entries: list[Entry] = []
    append = entries.append
    for entry_id, fields in raw:
        if not fields:
            append((entry_id, {}))
        elif len(fields) == 2:  # what the handler writes: one field, data
            append((entry_id, {fields[0]: fields[1]}))
        else:
            append((entry_id, dict(zip(fields[::2], fields[1::2], strict=True))))
    return entries


@dataclass(frozen=True, slots=True)
class Poison:
    """Why an entry is not a record document."""

    reason: str


def payload_of(entry: Entry) -> Any:
    """A stream entry's ``data`` field, or a list element or channel message as is (None if missing)."""
    payload = entry[1]
    return payload.get(b"data") if type(payload) is dict else payload


def parse_entry(entry: Entry) -> dict[str, Any] | Poison:
    """The document in *entry*, or :class:`Poison` saying why there is none."""
    payload = payload_of(entry)
    if payload is None:
        return Poison("the entry has no 'data' field")
    try:
        document = loads(payload)
    except ValueError as exc:
        return Poison(f"the payload is not JSON ({exc})")
    if type(document) is not dict:
        return Poison(f"the payload is JSON but not an object (a {type(document).__name__})")
    return from_ecs(document) if is_ecs(document) else document
