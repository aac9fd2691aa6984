"""Everything that talks to Redis: the client, the batch-writing scripts and error classification."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ._config import Settings

__all__ = ["SOCKET_TIMEOUT", "BatchWriter", "Outcome", "classify", "create_client", "frame"]

SOCKET_TIMEOUT = 5.0  # seconds one write may wait for its reply before it counts as failed
CONNECT_TIMEOUT = 2.0

# One script call writes a whole batch: one command and one small reply (a
# pipeline of XADDs costs the consumer per-entry reply parsing), and a script
# runs atomically on the server.
# KEYS[1] = key; ARGV[1] = maxlen or ""; ARGV[2] = ttl or ""; ARGV[3..] = documents.
_STREAM_SCRIPT = """
local key = KEYS[1]
for i = 3, #ARGV do
  redis.call('XADD', key, '*', 'data', ARGV[i])
end
local maxlen = tonumber(ARGV[1])
if maxlen then redis.call('XTRIM', key, 'MAXLEN', '~', maxlen) end
local ttl = tonumber(ARGV[2])
if ttl then redis.call('EXPIRE', key, ttl) end
return #ARGV - 2
"""

# Lua's unpack() has a stack limit, so RPUSH takes at most 1000 elements a call.
_LIST_SCRIPT = """
local key = KEYS[1]
local last = #ARGV
for i = 3, last, 1000 do
  redis.call('RPUSH', key, unpack(ARGV, i, math.min(i + 999, last)))
end
local maxlen = tonumber(ARGV[1])
if maxlen then redis.call('LTRIM', key, -maxlen, -1) end
local ttl = tonumber(ARGV[2])
if ttl then redis.call('EXPIRE', key, ttl) end
return last - 2
"""

_PUBSUB_SCRIPT = """
local key = KEYS[1]
for i = 3, #ARGV do
  redis.call('PUBLISH', key, ARGV[i])
end
return #ARGV - 2
"""

_SCRIPTS = {"stream": _STREAM_SCRIPT, "list": _LIST_SCRIPT, "pubsub": _PUBSUB_SCRIPT}


def create_client(settings: Settings) -> Any:
    """Create the handler's asyncio client; call it on the runtime loop only."""
    if settings.client is not None:
        return settings.client()
    return redis.asyncio.Redis.from_url(
        settings.url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        # The consumer owns the retry policy: redis-py's own retry re-sends a
        # batch whose reply was lost and writes it twice.
        retry=Retry(NoBackoff(), 0),
        retry_on_error=[],
        health_check_interval=0,
        protocol=2,
    )


def frame(document: bytes) -> bytes:
    """Frame *document* as a RESP bulk string, ready to be joined into a command.

    Done on the application's thread when the record is buffered: the consumer
    then only joins bytes, which keeps its share of the GIL small.
    """
    return b"$%d\r\n%s\r\n" % (len(document), document)


class BatchWriter:
    """Writes batches of framed documents over one dedicated connection, one script call per batch.

    Commands are assembled from pre-framed documents with a single
    ``bytes.join`` and sent with ``send_packed_command``: redis-py's per-argument
    packing would cost the consumer thread microseconds per record while the
    application's threads compete with it for the GIL. The script travels with
    every call (EVAL, not EVALSHA): it is tiny next to a batch, and a restarted
    or flushed server can never answer NOSCRIPT.
    """

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self._connection: Any = None
        fixed = [
            b"EVAL",
            _SCRIPTS[settings.mode].encode(),
            b"1",
            settings.key.encode(),
            b"" if settings.maxlen is None else str(settings.maxlen).encode(),
            b"" if settings.ttl is None else str(settings.ttl).encode(),
        ]
        self._fixed_count = len(fixed)
        self._fixed = b"".join(frame(argument) for argument in fixed)

    async def _connected(self) -> Any:
        if self._connection is None:
            self._connection = await self.client.connection_pool.get_connection()
        connection = self._connection
        if not connection.is_connected:
            await connection.connect()
        return connection

    async def prepare(self) -> None:
        """Connect now, so the first batch (or one sent at exit) finds a warm connection."""
        await self._connected()

    async def write(self, batches: Sequence[Sequence[bytes]]) -> list[Exception | None]:
        """Write *batches* in order in one round trip; returns each batch's error reply, or None.

        Each batch is one atomic script call; several batches are pipelined
        (not in a transaction), so the server stays responsive between them.
        A connection error or timeout raises: the outcome of every batch is
        then unknown.
        """
        parts: list[bytes] = []
        for batch in batches:
            parts.append(b"*%d\r\n" % (self._fixed_count + len(batch)))
            parts.append(self._fixed)
            parts.extend(batch)
        connection = await self._connected()
        errors: list[Exception | None] = []
        try:
            await connection.send_packed_command(b"".join(parts), check_health=False)
            for _ in batches:
                try:
                    await connection.read_response()
                except redis.exceptions.ResponseError as exc:
                    errors.append(exc)
                else:
                    errors.append(None)
        except BaseException:
            # Replies may still be on their way: the connection is out of step.
            await connection.disconnect(nowait=True)
            raise
        return errors

    async def close(self) -> None:
        """Close the connection and the client."""
        if self._connection is not None:
            await self._connection.disconnect(nowait=True)
            await self.client.connection_pool.release(self._connection)
        await self.client.aclose()


class Outcome(enum.Enum):
    """What the consumer does with a batch whose write failed."""

    RETRY = "retry"
    DROP = "drop"


# Server replies that mean "try again later" rather than "this can never work".
# redis-py turns the codes it knows into exception classes (and strips the
# code from the message); the others keep the code as the message's first word.
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(redis.exceptions, name)
    for name in ("OutOfMemoryError", "ReadOnlyError", "TryAgainError", "ClusterDownError", "MasterDownError")
    if hasattr(redis.exceptions, name)
)
_TRANSIENT_CODES = frozenset(
    {"READONLY", "LOADING", "TRYAGAIN", "MASTERDOWN", "BUSY", "OOM", "CLUSTERDOWN", "NOREPLICAS", "MISCONF"}
)


def classify(exc: BaseException) -> Outcome:
    """Classify a failed write: transient trouble is retried, a configuration error drops the batch."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return Outcome.DROP
    if isinstance(exc, _TRANSIENT_ERRORS):
        return Outcome.RETRY
    if isinstance(exc, redis.exceptions.ResponseError):
        words = str(exc).split()
        return Outcome.RETRY if words and words[0].upper() in _TRANSIENT_CODES else Outcome.DROP
    # Connection failures, timeouts (an unknown outcome: the batch may have
    # been written) and anything unexpected are retried: dropping is final.
    return Outcome.RETRY
