"""Retention: a consumer removes the stream entries every group has finished with, and counts what it missed.

Once a second (at most) each stream consumer runs one Lua script on each key
it reads, so that what it decides cannot race a read, an acknowledgement or a
new group:

1. **What its own group missed.** Entries removed from the head of the stream
   (the handler's ``maxlen``, an operator's ``XTRIM``) before the group read
   them leave a gap between the group's last delivered id and the stream's
   first entry. Redis counts in the group's ``entries-read`` only the entries
   it delivered, so while the gap is ahead of the group, what it missed is the
   number of entries ever removed from the head (``entries-added - length``)
   less ``entries-read``; once the group has read everything (its last
   delivered id is the stream's last), it is ``entries-added`` less
   ``entries-read``, which also catches a gap the group crossed between two
   runs. The script returns it and sets ``entries-read`` to the true position
   (``XGROUP SETID`` with the same id), so that no gap is counted twice, by
   this consumer or another of the group. Unknowable, and not counted, while
   the group's counter is not valid (a group created at ``0`` on a stream
   with entries, until its first read) or after entries were deleted inside
   the stream (``XDEL``).
2. **The safe point.** For each group of the key, the oldest entry it has not
   finished with: its oldest pending entry, else the entry after its last
   delivered id. Entries older than every group's safe point are done with.
3. **The history kept for** ``tail``: the newest ``retain`` entries, and
   (with ``retain_seconds``) those younger than that.
4. ``XTRIM MINID`` to the oldest of those limits: exact when nothing is kept
   past the safe point; otherwise approximate (whole nodes of the stream,
   about a hundred entries each) with a ``LIMIT`` so that at least ``retain``
   entries stay.

Without a group on the key nothing is known to be read, and nothing is removed.
The script computes the safe point itself rather than with Redis 8.2's
acknowledgement-aware ``XTRIM ... ACKED``, so that it behaves the same on every
server (Redis 7, Valkey) and needs no version check.
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.exceptions

from redis_log_handler._shared.diagnostics import describe, report

from .settings import ReaderSettings

__all__ = ["RETENTION_INTERVAL", "Retention"]

RETENTION_INTERVAL = 1.0  # seconds between two runs of the script for one key

_SCRIPT = """
local key, group_name = KEYS[1], ARGV[1]
local retain, retain_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local function fields(flat)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function older(a, b)
  local a_ms, a_seq = parse(a)
  local b_ms, b_seq = parse(b)
  return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
end
local function next_id(id)
  local ms, seq = parse(id)
  return string.format('%d-%d', ms, seq + 1)
end
local ok, raw = pcall(redis.call, 'XINFO', 'STREAM', key)
if not ok then
  local message = type(raw) == 'table' and raw.err or tostring(raw)
  if string.find(message, 'no such key') then return {0, 0} end
  return redis.error_reply(message)
end
local stream = fields(raw)
local first = stream['first-entry'] and stream['first-entry'][1] or next_id(stream['last-generated-id'])
local removed = stream['entries-added'] - stream['length']
local missed, safe = 0, nil
for _, flat in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local group = fields(flat)
  local delivered = group['last-delivered-id']
  local read = group['entries-read']
  if group['name'] == group_name and read and older(stream['max-deleted-entry-id'], first) then
    local behind = nil  -- how many entries came before the group's next one
    if older(delivered, first) then
      behind = removed
    elseif delivered == stream['last-generated-id'] then
      behind = stream['entries-added']
    end
    if behind and behind > read then
      missed = behind - read
      redis.call('XGROUP', 'SETID', key, group_name, delivered, 'ENTRIESREAD', behind)
    end
  end
  local point = next_id(delivered)
  if group['pending'] > 0 then
    local oldest = redis.call('XPENDING', key, group['name'])[2]
    if older(oldest, point) then point = oldest end
  end
  if safe == nil or older(point, safe) then safe = point end
end
if safe == nil or retain < 0 then return {0, missed} end
if retain_ms > 0 then
  local now = redis.call('TIME')
  local young = string.format('%d-0', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - retain_ms)
  if older(young, safe) then safe = young end
end
if retain == 0 then return {redis.call('XTRIM', key, 'MINID', safe), missed} end
local spare = stream['length'] - retain
if spare <= 0 then return {0, missed} end
return {redis.call('XTRIM', key, 'MINID', '~', safe, 'LIMIT', spare), missed}
"""


class Retention:
    """Runs the retention script for one stream key of one consumer, at most once every RETENTION_INTERVAL."""

    def __init__(self, client: redis.Redis, settings: ReaderSettings, counts: dict[str, int]) -> None:
        self._client = client
        self._settings = settings
        self._counts = counts  # the consumer's: "trimmed" and "trimmed_unread"
        self._next = 0.0
        self._off = False

    def run_if_due(self) -> None:
        """Remove what every group has finished with, past the history kept, and count what the group missed."""
        now = time.monotonic()
        if self._off or now < self._next:
            return
        self._next = now + RETENTION_INTERVAL
        settings = self._settings
        retain = -1 if settings.retain is None else settings.retain
        try:
            reply: Any = self._client.eval(
                _SCRIPT, 1, settings.key, settings.group, retain, int(settings.retain_seconds * 1000)
            )
        except redis.exceptions.NoPermissionError as exc:
            self._off = True
            report(
                "consumer-retention",
                f"retention is off for {settings.key!r}: the user may not run it ({describe(exc)}); "
                "see the ACL lines in docs/production.md",
            )
            return
        except redis.exceptions.ResponseError as exc:  # a server without Redis 7's XINFO fields, or busy
            report("consumer-retention", f"retention skipped for {settings.key!r} ({describe(exc)}); tried again later")
            return
        trimmed, missed = int(reply[0]), int(reply[1])
        self._counts["trimmed"] += trimmed
        if missed:
            self._counts["trimmed_unread"] += missed
            report(
                "consumer-trimmed-unread",
                f"{missed:,} entries of {settings.key!r} were removed before group {settings.group!r} read them "
                "(the handler's maxlen, or an XTRIM); they are counted in stats()['trimmed_unread']",
            )
