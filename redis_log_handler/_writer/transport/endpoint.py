"""Where the writer's dedicated connection goes: the client's pool, or the master serving the key's slot.

One server, and a master watched by Sentinel, are reached through the client's
connection pool: a Sentinel-managed connection asks the sentinels for the
current master each time it connects, and turns a READONLY reply from a
demoted master into a connection error (redis-py), so a failover is a
reconnection. In a cluster, one key lives in one slot on one master: the
writer connects to that master directly, moves when a MOVED reply names
another, and asks the cluster for its slot map again after losing the
connection (a failover promotes a replica elsewhere).
"""

from __future__ import annotations

from typing import Any, Protocol

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["Endpoint", "PoolEndpoint", "SlotEndpoint", "endpoint_for"]


class Endpoint(Protocol):
    """Gives the writer a connection, and hears about redirections and lost connections."""

    async def connection(self) -> Any:
        """A connection object for the server to write to (not necessarily connected yet)."""

    def redirected(self, error: redis.exceptions.AskError) -> bool:
        """Whether *error* (MOVED, or ASK) moved the key elsewhere: the writer then reconnects."""

    def lost(self) -> None:
        """The connection failed: the next :meth:`connection` may have to find the server again."""

    async def release(self, connection: Any) -> None:
        """Give a connection from :meth:`connection` back, disconnected."""


class PoolEndpoint:
    """One connection from the client's pool, reconnected in place (Sentinel finds the master on connect)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def connection(self) -> Any:
        return await self._client.connection_pool.get_connection()

    def redirected(self, error: redis.exceptions.AskError) -> bool:
        return False

    def lost(self) -> None:
        pass

    async def release(self, connection: Any) -> None:
        await connection.disconnect(nowait=True)
        await self._client.connection_pool.release(connection)


class SlotEndpoint:
    """A connection to the master serving *key*'s slot, from the cluster client's slot map or a MOVED reply."""

    def __init__(self, cluster: Any, key: str) -> None:
        self._cluster = cluster
        self._key = key
        self._moved_to: tuple[str, int] | None = None
        self._stale = False

    async def connection(self) -> Any:
        cluster = self._cluster
        await cluster.initialize()  # the first time only
        if self._stale:
            await cluster.nodes_manager.initialize()
            self._stale = False
        node = cluster.get_node_from_key(self._key)
        options = dict(node.connection_kwargs)
        if self._moved_to is not None:
            # Newer than the slot map: MOVED names the slot's owner once a migration or failover completed.
            options["host"], options["port"] = self._moved_to
            self._moved_to = None
        # The writer owns the retry policy: a retry inside redis-py would re-send a batch whose reply was lost.
        options["retry"] = Retry(NoBackoff(), 0)
        options.pop("retry_on_error", None)
        return node.connection_class(**options)

    def redirected(self, error: redis.exceptions.AskError) -> bool:
        if isinstance(error, redis.exceptions.MovedError):
            self._moved_to = (error.host, int(error.port))
            self._stale = True
            return True
        # ASK: the slot is migrating and the key already left. The batch waits for the migration to
        # finish (a MOVED reply then names the new owner) rather than writing to a half-moved key.
        return False

    def lost(self) -> None:
        self._stale = True

    async def release(self, connection: Any) -> None:
        await connection.disconnect(nowait=True)


def endpoint_for(client: Any, key: str) -> Endpoint:
    """The endpoint for *client*: a cluster client writes to *key*'s slot, any other through its pool."""
    if isinstance(client, redis.asyncio.RedisCluster):
        return SlotEndpoint(client, key)
    return PoolEndpoint(client)
