"""What the reader side reads: an entry (an id and a payload), and entries from a raw XREADGROUP reply."""

from __future__ import annotations

from typing import Any

__all__ = ["Entry", "EntryId", "as_text", "id_order", "raw_reply", "stream_entries"]

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
