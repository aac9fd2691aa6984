"""Reading a stream through a consumer group: new entries, this consumer's own pending ones, and dead peers' ones.

Where a batch comes from, in order of preference:

1. **Claims.** At start and then at least every ``claim_idle / 2`` seconds, a
   full ``XAUTOCLAIM`` pass (cursor from ``0-0`` back to ``0-0``, one step per
   batch) takes over entries that another consumer read and did not
   acknowledge within ``claim_idle``: it died, or hangs.
2. **History.** Entries this consumer was given and has not acknowledged (read
   with ``XREADGROUP ... 0``): after a restart under the same name, and after
   a loop stopped in the middle of a batch.
3. **New entries** (``XREADGROUP ... >``), waiting up to ``block`` seconds.

Every second or so it also removes what every group has finished with (see
``retention``).

Entries trimmed or deleted while pending come back from history as an id
without fields, and from ``XAUTOCLAIM`` (Redis 7+) as the reply's third
element. redis-py's ``justid`` form drops that element, so the full form is
used. Both are acknowledged (which removes them from the pending list) and
counted in ``deleted_pending``: left alone they would stay pending for ever.
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.exceptions

from .entries import Entry, EntryId, as_text, raw_reply, stream_entries
from .prefetch import NewEntries
from .retention import Retention
from .settings import ReaderSettings

__all__ = ["StreamGroup"]

_LAG_REFRESH = 1.0  # seconds between two XINFO GROUPS calls for stats()["lag"]


class StreamGroup:
    """One consumer's view of a stream's consumer group; creates the group (and the stream) on first use."""

    def __init__(self, client: redis.Redis, settings: ReaderSettings, counts: dict[str, int]) -> None:
        assert settings.name is not None
        self._client = client
        client.set_response_callback("XREADGROUP", raw_reply)  # the consumer's own client: see _entries
        self._settings = settings
        self._name = settings.name
        self._group_ready = False
        self._history: EntryId | None = "0"  # next id to read this consumer's pending entries from; None: caught up
        self._claim_cursor: str | None = "0-0"  # None: no claim pass running
        self._next_claim = 0.0
        self._next_lag = 0.0
        self._counts = counts  # the consumer's: "claimed" and "deleted_pending" outlive a reconnection
        self._lag: int | None = None
        self._new = NewEntries(client, settings)
        self._retention = Retention(client, settings, counts)

    def read(self, ack: list[EntryId]) -> list[Entry]:
        """Acknowledge *ack*, then return the next batch of entries to handle (empty if none came within ``block``)."""
        if not self._group_ready:
            self._create_group()
        try:
            self._retention.run_if_due()  # before reading: a gap is counted before the group reads past it
            return self._next_batch(ack)
        except redis.exceptions.RedisError as exc:
            self._history = "0"  # a batch read ahead may be pending for this consumer, unseen
            if not isinstance(exc, redis.exceptions.ResponseError) or not str(exc).startswith("NOGROUP"):
                raise
            # The stream was deleted (or expired) with its group: start again on the new one.
            self._group_ready = False
            return []

    def ack(self, ids: list[EntryId]) -> None:
        """Acknowledge handled (or dead-lettered) entries: they leave the pending list."""
        if ids:
            self._client.xack(self._settings.key, self._settings.group, *ids)

    def give_back(self, entries: list[Entry]) -> None:
        """Entries read but not handled stay pending: read them again from history next time."""
        if entries:
            self._history = "0"

    def stop(self) -> None:
        """The loop stopped: settle the connection that reads ahead (a batch read ahead stays pending)."""
        if self._new.stop():
            self._history = "0"

    def lag(self) -> int | None:
        """Entries not yet delivered to the group (asked of the server at most once a second)."""
        now = time.monotonic()
        if now < self._next_lag or not self._group_ready:
            return self._lag
        self._next_lag = now + _LAG_REFRESH
        for group in self._client.xinfo_groups(self._settings.key):
            if as_text(group["name"]) == self._settings.group:
                lag = group.get("lag")
                self._lag = int(lag) if lag is not None else None
        return self._lag

    def _create_group(self) -> None:
        settings = self._settings
        try:
            self._client.xgroup_create(settings.key, settings.group, id=settings.start, mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _next_batch(self, ack: list[EntryId]) -> list[Entry]:
        now = time.monotonic()
        if self._claim_cursor is None and now >= self._next_claim:
            self._claim_cursor = "0-0"
        if self._claim_cursor is not None or self._history is not None:
            self.stop()  # claims and history first: a batch read ahead is then read from history
            self.ack(ack)
            ack = []
        if self._claim_cursor is not None:
            claimed = self._claim_step()
            if claimed:
                return claimed
        if self._history is not None:
            history = self._read_history()
            if history:
                return history
        return self._new.read(ack)

    def _claim_step(self) -> list[Entry]:
        settings = self._settings
        assert self._claim_cursor is not None
        reply: Any = self._client.xautoclaim(
            settings.key,
            settings.group,
            self._name,
            min_idle_time=int(settings.claim_idle * 1000),
            start_id=self._claim_cursor,
            count=settings.batch_size,
        )
        cursor, entries = as_text(reply[0]), reply[1]
        deleted = reply[2] if len(reply) > 2 else []  # Redis 7+: ids of entries deleted while pending
        self._counts["deleted_pending"] += len(deleted)
        if cursor == "0-0":
            self._claim_cursor = None
            self._next_claim = time.monotonic() + settings.claim_idle / 2
        else:
            self._claim_cursor = cursor
        live = self._without_deleted(entries)
        self._counts["claimed"] += len(live)
        return live

    def _read_history(self) -> list[Entry]:
        assert self._history is not None
        entries = self._read_pending(self._history)
        if not entries:
            self._history = None
            return []
        last = entries[-1][0]
        self._history = last if last is not None else None
        return self._without_deleted(entries)

    def _read_pending(self, start: EntryId) -> list[Entry]:
        """This consumer's pending entries after *start* (XREADGROUP with an id: history, never blocks)."""
        settings = self._settings
        reply: Any = self._client.xreadgroup(
            settings.group, self._name, {settings.key: start}, count=settings.batch_size
        )
        return stream_entries(reply)

    def _without_deleted(self, entries: list[Any]) -> list[Entry]:
        """Drop (and acknowledge) entries that were trimmed while pending: they come back without fields."""
        live: list[Entry] = []
        gone: list[EntryId] = []
        for entry_id, fields in entries:
            if entry_id is None:  # a Redis 6.2 XAUTOCLAIM tombstone without an id
                continue
            if fields:
                live.append((entry_id, fields))
            else:
                gone.append(entry_id)
        if gone:
            self.ack(gone)
            self._counts["deleted_pending"] += len(gone)
        return live
