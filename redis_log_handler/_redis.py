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

__all__ = ["SOCKET_TIMEOUT", "BatchWriter", "Outcome", "classify", "create_client"]

SOCKET_TIMEOUT = 5.0  # seconds one write may wait for its reply before it counts as failed
CONNECT_TIMEOUT = 2.0

# One script call writes a whole batch: one round trip, one command for the
# client to encode and one small reply to parse (a pipeline of XADDs costs the
# writer thread per-entry work while it competes with the application for the
# GIL), and a script runs atomically on the server.
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


class BatchWriter:
    """Writes batches of encoded documents with one script call each."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self._key = settings.key
        self._options = (
            b"" if settings.maxlen is None else str(settings.maxlen).encode(),
            b"" if settings.ttl is None else str(settings.ttl).encode(),
        )
        self._script = client.register_script(_SCRIPTS[settings.mode])

    async def prepare(self) -> None:
        """Connect and load the script, so the first batch costs one round trip."""
        await self.client.script_load(self._script.script)

    async def write(self, documents: Sequence[bytes]) -> None:
        """Write *documents* in order, all or none."""
        await self._script(keys=[self._key], args=[*self._options, *documents])

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()


class Outcome(enum.Enum):
    """What the consumer does with a batch whose write failed."""

    RETRY = "retry"
    DROP = "drop"


# Server replies that mean "try again later" rather than "this can never work".
_TRANSIENT_REPLIES = frozenset(
    {"READONLY", "LOADING", "TRYAGAIN", "MASTERDOWN", "BUSY", "OOM", "CLUSTERDOWN", "NOREPLICAS", "MISCONF", "NOSCRIPT"}
)


def classify(exc: BaseException) -> Outcome:
    """Classify a failed write: transient trouble is retried, a configuration error drops the batch."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return Outcome.DROP
    if isinstance(exc, redis.exceptions.ResponseError):
        words = str(exc).split()
        return Outcome.RETRY if words and words[0].upper() in _TRANSIENT_REPLIES else Outcome.DROP
    # Connection failures, timeouts (an unknown outcome: the batch may have
    # been written) and anything unexpected are retried: dropping is final.
    return Outcome.RETRY
