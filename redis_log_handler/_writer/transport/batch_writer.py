"""The writer's client and its one connection: connecting, and one round trip of batches and their replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from redis_log_handler._shared.address import async_client, close_async_client
from redis_log_handler._shared.eviction import evicting_policy, warn_if_evicting
from redis_log_handler._shared.resp import command_prefix, join_calls

from .batch_commands import BatchCommands
from .endpoint import endpoint_for
from .info import replication_history, supports_idempotent_xadd
from .protocol import OutcomeUnknown, ReplicationHistory, RoundTripReply, TransportSettings
from .writer_socket import WriterSocket, ready_now

__all__ = ["FORGET_AFTER", "BatchWriter", "create_client"]

CONNECT_TIMEOUT = 2.0
FORGET_AFTER = 10  # heartbeat intervals without a beat before a beat removes the field
# KEYS[1] = the hash; ARGV = field, value, now. Writes the field, then removes fields stale for too long.
_BEAT_SCRIPT = f"""
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local now = tonumber(ARGV[3])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local ok, beat = pcall(cjson.decode, entries[i + 1])
  if not ok or type(beat) ~= 'table' or type(beat.seen_at) ~= 'number' or type(beat.interval) ~= 'number'
     or now - beat.seen_at > {FORGET_AFTER} * beat.interval then
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return 1
"""


def create_client(settings: TransportSettings) -> Any:
    """Create the handler's asyncio client; call it on the runtime loop only."""
    if settings.client is not None:
        return settings.client()
    assert settings.url is not None  # the settings' checks resolved it
    return async_client(
        settings.url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        # The drain task owns the retry policy: redis-py's own retry re-sends a
        # batch whose reply was lost and writes it twice.
        retry=Retry(NoBackoff(), 0),
        retry_on_error=[],
        health_check_interval=0,
        protocol=2,
    )


class BatchWriter:
    """The transport to Redis: batches of framed documents over one dedicated connection, one atomic command each.

    Commands (see ``batch_commands``) are assembled from pre-framed documents with a single
    ``bytes.join`` (see ``_shared.resp``) and sent with ``send_packed_command``: redis-py's per-argument
    packing would cost the runtime thread microseconds per record while the
    application's threads compete with it for the GIL.

    With ``wait_replicas=N`` every round trip ends with ``WAIT N <ms>``, which
    covers every write made before it on this connection: ``generation`` tells
    the caller whether a batch accepted earlier went over the current connection.
    """

    def __init__(
        self, client: Any, settings: TransportSettings, key: str, *, loop_could_run: Callable[[], bool]
    ) -> None:
        self.client = client
        self._loop_could_run = loop_could_run  # back-pressure's view of the runtime loop (see can_resume)
        self.idempotent = False
        self.generation = 0  # counts connections: a WAIT only vouches for writes made on its own
        self.history: ReplicationHistory = ("", "")  # the master's, read on each connection with wait_replicas
        self._stream = settings.mode == "stream"
        self._holds_records = settings.mode != "pubsub"  # a channel keeps nothing that could be evicted
        self._ttl = settings.ttl is not None
        self._endpoint = endpoint_for(client, key)
        self._key = key
        self._wait = (
            join_calls(command_prefix([b"WAIT", b"%d" % settings.wait_replicas, b"%d" % _wait_ms(settings)]), [()])
            if settings.wait_replicas
            else b""
        )
        self._replicas = settings.wait_replicas
        self._connection: Any = None
        self._new_connection = False  # connected, and not yet asked for its version and socket
        # What write() waits for on its socket right now (read from other threads by can_resume).
        self._waiting = _NOT_WAITING
        self._socket: WriterSocket | None = None
        self._commands = BatchCommands(settings, key)

    @property
    def connected(self) -> bool:
        """Whether the dedicated connection is open."""
        return self._connection is not None and bool(self._connection.is_connected)

    async def _connected(self) -> Any:
        self._waiting = _CONNECTING
        try:
            if self._connection is None:
                self._connection = await self._endpoint.connection()
                self._new_connection = True
            connection = self._connection
            if not connection.is_connected:
                await connection.connect()
                self._new_connection = True
            if self._new_connection:
                self.generation += 1
                self._socket = WriterSocket(connection)
                self._waiting = _AWAITING_REPLY
                # Checked on every (re)connect: a failover may land on another server version.
                self.idempotent = self._stream and await self._server_has_idempotent_xadd(connection)
                if self._replicas:
                    self.history = await self._replication_history(connection)
                if self.generation == 1 and self._holds_records:
                    warn_if_evicting(await self._eviction_policy(connection), self._key, "handler", ttl=self._ttl)
                self._new_connection = False
        except Exception:
            await self._drop_connection()  # the next attempt asks the endpoint again: a failover moves the master
            raise
        finally:
            self._waiting = _NOT_WAITING
        return connection

    def can_resume(self) -> bool:
        """Whether what :meth:`write` waits for has come (room to send, or a reply); callable from any thread.

        True when it waits for nothing (it is running, or ready to). While it
        connects, whenever the runtime loop could run (see ``_writer.backpressure``).
        Without a socket to look at (redis-py internals changed), False: the
        caller then never mistakes a wait on Redis for a writer that could run.
        """
        waiting, writer_socket = self._waiting, self._socket
        fd = writer_socket.fd if writer_socket is not None else -1
        if waiting == _NOT_WAITING:
            return True
        if waiting == _CONNECTING:
            # Resolving, the TCP handshake, the first commands: no one socket to look at, so ask the loop.
            return self._loop_could_run()
        return ready_now(fd, writable=waiting == _SENDING)

    @staticmethod
    async def _server_has_idempotent_xadd(connection: Any) -> bool:
        try:
            await connection.send_command("INFO", "server", check_health=False)
            info = await connection.read_response()
        except redis.exceptions.ResponseError:  # INFO renamed or denied by an ACL: assume an older server
            return False
        return supports_idempotent_xadd(info)

    @staticmethod
    async def _eviction_policy(connection: Any) -> str | None:
        try:
            await connection.send_command("CONFIG", "GET", "maxmemory-policy", check_health=False)
            return evicting_policy(await connection.read_response())
        except redis.exceptions.ResponseError:  # CONFIG denied by an ACL, or renamed
            return None

    @staticmethod
    async def _replication_history(connection: Any) -> ReplicationHistory:
        try:
            await connection.send_command("INFO", "replication", check_health=False)
            return replication_history(await connection.read_response())
        except redis.exceptions.ResponseError:  # denied by an ACL: no failover is recognised
            return "", ""

    async def prepare(self) -> None:
        """Connect now, so the first batch (or one sent at exit) finds a warm connection."""
        await self._connected()

    async def write(self, batches: Sequence[Sequence[bytes]]) -> RoundTripReply:
        """Write *batches* in order in one round trip (then ``WAIT`` if replicas are awaited).

        Each batch is one atomic command; several batches are pipelined
        (not in a transaction), so the server stays responsive between them.
        With no batches, only the ``WAIT`` goes out (for batches written
        earlier on this connection). Failing to connect raises the connection
        error: nothing was sent. A failure once the command is on its way
        raises :class:`OutcomeUnknown`.
        """
        connection = await self._connected()
        writer_socket = self._socket
        assert writer_socket is not None  # set by _connected
        command = self._commands.command(batches, idempotent=self.idempotent) + self._wait
        errors: list[Exception | None] = []
        upkeep_errors: list[Exception] = []
        replicated = True
        try:
            # Before the send: none of this trip's replies can have been read yet.
            writer_socket.expect(len(batches) * self._commands.replies + bool(self._replicas))
            self._waiting = _SENDING
            await connection.send_packed_command(command, check_health=False)
            self._waiting = _AWAITING_REPLY
            for _ in batches:
                errors.append(await self._batch_reply(connection, upkeep_errors))
                writer_socket.reply_came()
            if self._replicas:
                replicated = int(await connection.read_response()) >= self._replicas
                writer_socket.reply_came()
        except BaseException as exc:
            # Replies may still be on their way: the connection is out of step.
            await self._drop_connection()
            if isinstance(exc, Exception):
                raise OutcomeUnknown(str(exc) or type(exc).__name__) from exc
            raise
        finally:
            self._waiting = _NOT_WAITING
        if any(isinstance(error, redis.exceptions.AskError) and self._endpoint.redirected(error) for error in errors):
            await self._drop_connection()  # the key lives elsewhere now: the next write connects there
        return RoundTripReply(errors, replicated, upkeep_errors)

    async def _batch_reply(self, connection: Any, upkeep_errors: list[Exception]) -> Exception | None:
        """The error reply to one batch's write, or None; refusals of its trim and expiry go to *upkeep_errors*."""
        try:
            await connection.read_response()
        except redis.exceptions.ResponseError as exc:
            error: Exception | None = exc
        else:
            error = None
        for _ in range(self._commands.replies - 1):
            try:
                await connection.read_response()
            except redis.exceptions.ResponseError as exc:  # the batch is written: only its upkeep failed
                upkeep_errors.append(exc)
        return error

    async def _drop_connection(self) -> None:
        self._socket = None
        connection, self._connection = self._connection, None
        self._endpoint.lost()
        if connection is not None:
            await self._endpoint.release(connection)

    async def beat(self, hash_key: str, field: str, value: str, now: float) -> None:
        """Write one heartbeat field and remove the fields stale for ``FORGET_AFTER`` of their intervals (atomic)."""
        await self.client.eval(_BEAT_SCRIPT, 1, hash_key, field, value, repr(now))

    async def forget(self, hash_key: str, field: str) -> None:
        """Remove one heartbeat field."""
        await self.client.hdel(hash_key, field)

    async def close(self) -> None:
        """Close the connection and the client."""
        if self._connection is not None:
            await self._endpoint.release(self._connection)
            self._connection = None
        await close_async_client(self.client)


_NOT_WAITING, _CONNECTING, _SENDING, _AWAITING_REPLY = 0, 1, 2, 3


def _wait_ms(settings: TransportSettings) -> int:
    """How long one WAIT blocks on the server: well inside the socket timeout, so its reply always comes."""
    return max(1, int(min(1.0, settings.socket_timeout / 2) * 1000))
