"""Reading a list (popped in batches) or a Pub/Sub channel: sources without acknowledgement or crash recovery.

A popped list element, like a published message, exists only in this process
once read: if the process dies before handling it, it is gone. Stream mode
with its consumer group is the mode to use when that matters.
"""

from __future__ import annotations

from typing import Any

import redis

from .entries import Entry, EntryId
from .settings import ReaderSettings

__all__ = ["ChannelListener", "ListPopper"]


class ListPopper:
    """Pops a list from its head (the handler pushes to its tail), a batch at a time with ``LPOP key count``."""

    def __init__(self, client: redis.Redis, settings: ReaderSettings) -> None:
        self._client = client
        self._settings = settings

    def read(self, ack: list[EntryId]) -> list[Entry]:
        """Pop up to ``batch_size`` elements atomically, waiting up to ``block`` seconds for the first."""
        key, count = self._settings.key, self._settings.batch_size
        popped: Any = self._client.lpop(key, count)
        if not popped:
            first: Any = self._client.blpop([key], timeout=self._settings.block)
            if first is None:
                return []
            popped = [first[1]]
            if count > 1:
                popped += self._client.lpop(key, count - 1) or []
        return [(None, element) for element in popped]

    def ack(self, ids: list[EntryId]) -> None:
        """Nothing to acknowledge: a popped element is already gone from Redis."""

    def give_back(self, entries: list[Entry]) -> None:
        """Push elements popped but not handled back to the head of the list, in their order."""
        if entries:
            self._client.lpush(self._settings.key, *[element for _, element in reversed(entries)])

    def stop(self) -> None:
        """Nothing to settle when the loop stops."""

    def lag(self) -> int | None:
        """The elements still in the list."""
        return int(self._client.llen(self._settings.key))


class ChannelListener:
    """Subscribes to the channel named by ``key``; sees only what is published while it listens."""

    def __init__(self, client: redis.Redis, settings: ReaderSettings) -> None:
        self._settings = settings
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]

    def read(self, ack: list[EntryId]) -> list[Entry]:
        """The messages received so far, up to ``batch_size``, waiting up to ``block`` seconds for the first."""
        if not self._pubsub.subscribed:
            self._pubsub.subscribe(self._settings.key)
        batch: list[Entry] = []
        timeout = self._settings.block
        while len(batch) < self._settings.batch_size:
            message = self._pubsub.get_message(timeout=timeout)
            if message is None:
                break
            batch.append((None, message["data"]))
            timeout = 0.0
        return batch

    def ack(self, ids: list[EntryId]) -> None:
        """Nothing to acknowledge: Pub/Sub keeps nothing."""

    def give_back(self, entries: list[Entry]) -> None:
        """Nothing can be given back: a message not handled is lost, as for any Pub/Sub subscriber."""

    def stop(self) -> None:
        """Nothing to settle when the loop stops (the subscription lasts until close)."""

    def lag(self) -> int | None:
        """None: no backlog can be measured on a channel."""
        return None

    def close(self) -> None:
        """Unsubscribe."""
        self._pubsub.close()
