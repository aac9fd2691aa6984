"""What the page reads: the records before a cursor (history, newest first) and after one (live).

Read-only, as ``tail``: ``XREVRANGE`` and ``XREAD`` without a group on a
stream, ``LRANGE`` on a list; nothing is acknowledged, popped, trimmed or
created. A cursor holds one position per shard key: an entry id for a stream
(the page reads after it, or before it), a negative index for a list.

The filters run here, on the server: a page asks for ``limit`` records that
pass, and the server looks at no more than ``SCAN_LIMIT`` entries per request,
so a filter that matches nothing answers quickly with a cursor further back
(the page asks again while the user scrolls).

Sharded keys are merged by ``@timestamp``. An entry id is the time Redis
added the entry, never earlier than the record's ``@timestamp``; a shard that
was not read to its start bounds what the others may show in the same page
(their records older than its oldest id wait for the next page), so that the
merged history stays in time order.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from redis_log_handler._cli.tail_format import RecordFilter
from redis_log_handler._reader.entries import Poison, as_text, id_order, parse_entry
from redis_log_handler._schema.document import iso_timestamp

__all__ = ["CHUNK", "LIVE_CHUNK", "SCAN_LIMIT", "Page", "newer", "older"]

CHUNK = 500  # entries per command reading back
LIVE_CHUNK = 2000  # entries per live read: the page keeps 2,000 rows, a faster arrival needs no more
SCAN_LIMIT = 20_000  # entries looked at per request, over all shards
_FOLLOW_BLOCK_MS = 1000


@dataclass(frozen=True, slots=True)
class _Row:
    key: str
    position: str  # the entry id, or the list index
    stamp: str  # what rows are merged by: the record's @timestamp ('' for an entry that is not a record)
    shown: dict[str, Any]  # what the page gets


@dataclass(slots=True)
class Page:
    """Rows for the page (oldest first), the cursor to go on from, and whether the start of the key was reached."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    cursor: dict[str, str] = field(default_factory=dict)
    done: bool = False
    newest: dict[str, str] = field(default_factory=dict)  # (first page of a stream) the id to follow from


def _row(key: str, position: str, payload: Any, record_filter: RecordFilter) -> _Row | None:
    """The row of an entry that passes *record_filter*; an entry that is no record shows only unfiltered."""
    document = parse_entry((position, payload))
    if isinstance(document, Poison):
        if record_filter.active:
            return None
        return _Row(key, position, "", {"key": key, "id": position, "poison": document.reason})
    if not record_filter(document):
        return None
    stamp = document.get("@timestamp")
    shown = {"key": key, "id": position, "record": document}
    return _Row(key, position, stamp if isinstance(stamp, str) else "", shown)


@dataclass(slots=True)
class _Shard:
    rows: list[_Row]  # newest first
    floor: str | None  # the oldest position looked at; None when the start of the key was reached


def _stream_back(
    client: Any, key: str, before: str | None, limit: int, budget: int, record_filter: RecordFilter
) -> tuple[_Shard, str | None]:
    """Up to *limit* rows before *before* (the newest if None), and the newest id when *before* is None."""
    rows: list[_Row] = []
    upper = f"({before}" if before else "+"
    newest = None
    floor: str | None = before
    while len(rows) < limit and budget > 0:
        chunk: Any = client.xrevrange(key, upper, "-", count=min(CHUNK, budget))
        if newest is None and before is None:
            newest = str(as_text(chunk[0][0])) if chunk else "0-0"
        if not chunk:
            return _Shard(rows, None), newest
        budget -= len(chunk)
        for entry_id, fields in chunk:
            floor = str(as_text(entry_id))
            row = _row(key, floor, fields, record_filter)
            if row is not None:
                rows.append(row)
                if len(rows) == limit:
                    break
        upper = f"({floor}"
    return _Shard(rows, floor), newest


def _list_back(
    client: Any, key: str, before: str | None, limit: int, budget: int, record_filter: RecordFilter
) -> _Shard:
    """Up to *limit* rows of a list before index *before* (negative, from the tail where the handler pushes)."""
    rows: list[_Row] = []
    end = int(before) - 1 if before else -1
    while len(rows) < limit and budget > 0:
        start = end - min(CHUNK, budget) + 1
        chunk: Any = client.lrange(key, start, end)
        if not chunk:
            return _Shard(rows, None)
        budget -= len(chunk)
        for offset, element in enumerate(reversed(chunk)):
            row = _row(key, str(end - offset), element, record_filter)
            if row is not None:
                rows.append(row)
                if len(rows) == limit:
                    return _Shard(rows, row.position)
        end = start - 1
    return _Shard(rows, str(end + 1))


def older(
    client: Any, mode: str, keys: list[str], cursor: dict[str, str], limit: int, record_filter: RecordFilter
) -> Page:
    """The *limit* newest rows before *cursor* (a shard missing from it: from its newest entry)."""
    page = Page()
    shards: dict[str, _Shard] = {}
    for key in keys:
        before = cursor.get(key)
        if before == "":  # this shard was read to its start
            continue
        budget = SCAN_LIMIT // len(keys)
        if mode == "list":
            shards[key] = _list_back(client, key, before, limit, budget, record_filter)
            continue
        shards[key], newest = _stream_back(client, key, before, limit, budget, record_filter)
        if newest is not None:
            page.newest[key] = newest
    taken = _merge_back(shards, limit, mode)
    for key in keys:
        shard = shards.get(key)
        if shard is None:
            page.cursor[key] = ""
            continue
        mine = [row for row in taken if row.key == key]
        if len(mine) == len(shard.rows):  # everything this shard gave is shown: go on below what it looked at
            page.cursor[key] = "" if shard.floor is None else shard.floor
        else:  # the rest comes again with the next page
            page.cursor[key] = mine[-1].position if mine else cursor.get(key, _after_newest(page, key, mode))
    page.done = all(position == "" for position in page.cursor.values())
    page.rows = [row.shown for row in reversed(taken)]
    return page


def _after_newest(page: Page, key: str, mode: str) -> str:
    """Where a shard that showed nothing of its first page starts next time: above its newest entry."""
    if mode == "list":
        return "0"
    newest = page.newest.get(key, "0-0")
    ms, seq = id_order(newest)
    return f"{ms}-{seq + 1}"


def _merge_back(shards: dict[str, _Shard], limit: int, mode: str) -> list[_Row]:
    """The newest *limit* rows of all shards, newest first, none older than a shard that has more to read."""
    if len(shards) == 1:
        return next(iter(shards.values())).rows[:limit]
    floors = {  # an entry id's time, as a timestamp
        key: iso_timestamp(id_order(shard.floor)[0] / 1000)
        for key, shard in shards.items()
        if shard.floor and mode != "list"
    }
    kept = []
    for key, shard in shards.items():
        horizon = max((stamp for other, stamp in floors.items() if other != key), default="")
        kept.append([row for row in shard.rows if row.stamp >= horizon])
    # Each shard in its own order, newest first; the shards merged by time.
    return list(itertools.islice(heapq.merge(*kept, key=lambda row: row.stamp, reverse=True), limit))


def newer(
    client: Any, keys: list[str], after: dict[str, str], record_filter: RecordFilter
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The rows of the stream entries after *after* (one id per shard), waiting up to a second for one.

    Returns the rows (merged by time) and the ids to read after next time, which move past entries the filters
    left out too.
    """
    positions = dict(after)
    per_shard: list[list[_Row]] = []
    block = max(10, _FOLLOW_BLOCK_MS // len(keys))
    for key in keys:  # one shard at a time: a cluster keeps them on different masters
        reply: Any = client.xread({key: positions.get(key, "$")}, block=block, count=LIVE_CHUNK)
        rows: list[_Row] = []
        for _, entries in _stream_replies(reply):
            for entry_id, fields in entries:
                positions[key] = str(as_text(entry_id))
                row = _row(key, positions[key], fields, record_filter)
                if row is not None:
                    rows.append(row)
        per_shard.append(rows)
    # Each shard in its own order (the order its entries were added), the shards merged by time.
    merged = heapq.merge(*per_shard, key=lambda row: row.stamp) if len(per_shard) > 1 else per_shard[0]
    return [row.shown for row in merged], positions


def _stream_replies(reply: Any) -> list[tuple[Any, Any]]:
    """XREAD's reply as (stream, entries) pairs, from RESP3's map or RESP2's list."""
    if not reply:
        return []
    return list(reply.items()) if isinstance(reply, dict) else [(stream, entries) for stream, entries in reply]
