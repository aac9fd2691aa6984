"""The commands one batch becomes, per mode: what the server runs for every record the writer sends.

Each batch is one atomic command, so a batch is either all in Redis or not at
all, and its reply is small:

- **stream**: a script (``EVAL``) that runs one ``XADD`` per document, then the
  trim and the expiry. There is no multi-entry ``XADD``; a pipeline of them would
  cost the writer one reply to parse per record, on the thread that competes for
  the GIL with the application. Idempotent writes (Redis 8.6+) need the script's
  atomicity too: a re-sent batch is recognised by its first entry.
- **list**: one ``RPUSH`` of every document (a single command is atomic), then
  ``LTRIM`` and ``EXPIRE`` as separate commands in the same write: the server
  spends half as much per record as a script calling ``RPUSH``, and a trim or
  expiry that fails leaves the batch written (it is reported, not retried).
- **pubsub**: a script that runs one ``PUBLISH`` per document (one reply).

The scripts reply ``1`` (or ``0`` for a re-sent batch the server recognised):
replies of one fixed size let the writer's socket wake the runtime thread once
for all of a round trip's replies (see ``writer_socket``).

The script travels with every call (EVAL, not EVALSHA): it is tiny next to a
batch, and a restarted or flushed server can never answer NOSCRIPT.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis_log_handler._shared.resp import command_prefix, join_calls

from .protocol import TransportSettings

__all__ = ["BatchCommands"]

# KEYS[1] = key; ARGV[1] = maxlen or ""; ARGV[2] = ttl or "";
# ARGV[3] = "1" to write idempotently (stream mode on Redis 8.6+), else ""; ARGV[4..] = documents.
_STREAM_SCRIPT = """
local key = KEYS[1]
local first = 4
if ARGV[3] == "1" then
  -- Idempotent XADD (Redis 8.6+): the batch's first entry carries its record
  -- id, so a batch re-sent after a lost reply is recognised and skipped whole
  -- (the script is atomic: a batch is either all in the stream or not at all).
  local producer, sequence = string.match(cjson.decode(ARGV[4]).id, "^(.*)-(%d+)$")
  local before = redis.call('XLEN', key)
  redis.call('XADD', key, 'IDMP', producer, sequence, '*', 'data', ARGV[4])
  if redis.call('XLEN', key) == before then return 0 end
  first = 5
end
for i = first, #ARGV do
  redis.call('XADD', key, '*', 'data', ARGV[i])
end
local maxlen = tonumber(ARGV[1])
if maxlen then redis.call('XTRIM', key, 'MAXLEN', '~', maxlen) end
local ttl = tonumber(ARGV[2])
if ttl then redis.call('EXPIRE', key, ttl) end
return 1
"""

_PUBSUB_SCRIPT = """
local key = KEYS[1]
for i = 4, #ARGV do
  redis.call('PUBLISH', key, ARGV[i])
end
return 1
"""

_SCRIPTS = {"stream": _STREAM_SCRIPT, "pubsub": _PUBSUB_SCRIPT}


class BatchCommands:
    """The bytes that write batches of framed documents to one key, and how many replies each batch gets."""

    def __init__(self, settings: TransportSettings, key: str) -> None:
        encoded = key.encode()
        self.replies = 1
        self._upkeep = b""
        if settings.mode == "list":
            upkeep = []
            if settings.maxlen is not None:
                upkeep.append([b"LTRIM", encoded, b"-%d" % settings.maxlen, b"-1"])
            if settings.ttl is not None:
                upkeep.append([b"EXPIRE", encoded, b"%d" % settings.ttl])
            self._upkeep = b"".join(join_calls(command_prefix(command), [()]) for command in upkeep)
            self.replies += len(upkeep)
            push = command_prefix([b"RPUSH", encoded])
            self._prefix = {False: push, True: push}
            return
        fixed = [
            b"EVAL",
            _SCRIPTS[settings.mode].encode(),
            b"1",
            encoded,
            b"" if settings.maxlen is None else b"%d" % settings.maxlen,
            b"" if settings.ttl is None else b"%d" % settings.ttl,
        ]
        self._prefix = {
            idempotent: command_prefix([*fixed, b"1" if idempotent else b""]) for idempotent in (False, True)
        }

    def command(self, batches: Sequence[Sequence[bytes]], *, idempotent: bool) -> bytes:
        """One write carrying every batch, in order (*idempotent*: stream mode's IDMP form)."""
        return join_calls(self._prefix[idempotent], batches, self._upkeep)
