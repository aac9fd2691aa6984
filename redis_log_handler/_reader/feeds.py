"""Where the reader reads: one feed per shard key, each on the server that holds it, read in turn.

A consumer of a key with ``shards=N`` reads every shard: each batch comes from
one shard, the next batch from the next one, so no shard waits behind a busy
one. Entries are acknowledged (and given back) on the shard they came from.
In a cluster each shard is read through a plain client of the master serving
its slot (the stream reader's raw replies and read-ahead need a connection
pool of their own); a MOVED reply or a lost connection makes the consumer
open its feeds again, from a fresh slot map.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis

from redis_log_handler._shared.address import Topology, parse_address, sync_client
from redis_log_handler._shared.shards import shard_keys

from .entries import Entry, EntryId
from .list_and_channel import ChannelListener, ListPopper
from .settings import ReaderSettings
from .stream_group import StreamGroup

__all__ = ["Feed", "ShardedFeed", "open_feed", "reopens_on_error"]

_CONNECT_TIMEOUT = 2.0
_MIN_BLOCK = 0.01  # seconds: the shortest wait on one shard while others are read in turn

Feed = StreamGroup | ListPopper | ChannelListener


class ShardedFeed:
    """Several feeds read one after the other; acknowledgements go to the feed of the last batch."""

    def __init__(self, feeds: list[Feed]) -> None:
        self._feeds = feeds
        self._next = 0
        self._last: Feed | None = None  # the feed the entries of the last batch came from

    def read(self, ack: list[EntryId]) -> list[Entry]:
        """The next shard's batch; *ack* (ids of the last batch) is acknowledged where they came from."""
        feed = self._feeds[self._next]
        self._next = (self._next + 1) % len(self._feeds)
        if ack and self._last is not feed:
            self.ack(ack)
            ack = []
        entries = feed.read(ack)
        self._last = feed
        return entries

    def ack(self, ids: list[EntryId]) -> None:
        if self._last is not None:
            self._last.ack(ids)

    def give_back(self, entries: list[Entry]) -> None:
        if self._last is not None:
            self._last.give_back(entries)

    def stop(self) -> None:
        for feed in self._feeds:
            feed.stop()

    def lag(self) -> int | None:
        lags = [feed.lag() for feed in self._feeds]
        return None if None in lags else sum(lag for lag in lags if lag is not None)


def open_feed(settings: ReaderSettings, counts: dict[str, int]) -> tuple[Any, Feed | ShardedFeed]:
    """A client (for writes beside the reading: dead letters) and the feed reading every shard of the key."""
    assert settings.url is not None
    client = sync_client(settings.url, socket_connect_timeout=_CONNECT_TIMEOUT, socket_timeout=settings.block + 10.0)
    keys = shard_keys(settings.key, settings.shards)
    block = max(_MIN_BLOCK, settings.block / len(keys))
    feeds = [
        _feed(_client_for(client, key), dataclasses.replace(settings, key=key, block=block), counts) for key in keys
    ]
    return client, feeds[0] if len(feeds) == 1 else ShardedFeed(feeds)


def reopens_on_error(settings: ReaderSettings) -> bool:
    """Whether a failed read must open the feeds again: in a cluster the key's master may have changed."""
    assert settings.url is not None
    return parse_address(settings.url).topology is Topology.CLUSTER


def _client_for(client: Any, key: str) -> redis.Redis:
    if isinstance(client, redis.RedisCluster):
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        return client.get_redis_connection(node)
    return client  # type: ignore[no-any-return]


def _feed(client: redis.Redis, settings: ReaderSettings, counts: dict[str, int]) -> Feed:
    if settings.mode == "stream":
        return StreamGroup(client, settings, counts)
    if settings.mode == "list":
        return ListPopper(client, settings)
    return ChannelListener(client, settings)
