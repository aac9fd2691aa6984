"""Shard keys: one logical key spread over N Redis keys whose hash tags fall on N different parts of a cluster.

With ``shards=N`` (N > 1) the key ``logs`` becomes ``logs:{<tag>}`` for N tags.
A cluster hashes only the tag, and the tag of shard *i* is the smallest
decimal number whose slot lies in the *i*-th of N equal ranges of the 16,384
slots: so on a cluster whose masters split the slots evenly (what
``redis-cli --cluster create`` does) the shards land on different masters.
For ``logs`` and 3 shards the keys are ``logs:{3}``, ``logs:{1}`` and
``logs:{0}`` (slots 1584, 9842, 13907); :func:`shard_keys` lists them. On a single server they are
simply N keys. One process writes to one shard, chosen from its producer id, so
its own records stay in order.
"""

from __future__ import annotations

import functools
import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

__all__ = ["shard_key", "shard_keys"]


@functools.cache
def _tags(shards: int) -> tuple[str, ...]:
    tags: list[str | None] = [None] * shards
    number = 0
    while None in tags:
        tag = str(number)
        part = key_slot(tag.encode()) * shards // REDIS_CLUSTER_HASH_SLOTS
        if tags[part] is None:
            tags[part] = tag
        number += 1
    return tuple(tag for tag in tags if tag is not None)


def shard_keys(key: str, shards: int) -> list[str]:
    """The Redis keys that hold the logical *key* with *shards* shards, in shard order (``[key]`` for one)."""
    if shards == 1:
        return [key]
    return [f"{key}:{{{tag}}}" for tag in _tags(shards)]


def shard_key(key: str, shards: int, producer: str) -> str:
    """The shard this process (*producer*, its producer id) writes *key*'s records to."""
    keys = shard_keys(key, shards)
    return keys[zlib.crc32(producer.encode()) % len(keys)]
