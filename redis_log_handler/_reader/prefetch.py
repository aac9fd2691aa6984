"""New entries of a consumer group, read one batch ahead on a connection of their own.

Half the time of a plain ``XREADGROUP`` loop is the server's: it builds the
reply (and records each entry as pending) while the consumer waits, and the
consumer handles the batch while the server waits. Under a backlog (the last
batch was full) the request for the next batch is sent as soon as a batch
arrives, without ``BLOCK``, so the server prepares it while this one is
handled. The acknowledgement of a handled batch travels in the same write as
the request for the one after.

A batch read ahead is pending for this consumer from the moment the server
answers: if the loop stops first, it is read again from this consumer's
history (``XREADGROUP ... 0``) or claimed by another consumer after
``claim_idle``. Nothing is lost; at most one batch waits.
"""

from __future__ import annotations

from typing import Any

import redis

from .entries import Entry, EntryId, stream_entries
from .settings import ReaderSettings

__all__ = ["NewEntries"]


class NewEntries:
    """Sends XACK/XREADGROUP on one connection and reads their replies later, in order."""

    def __init__(self, client: redis.Redis, settings: ReaderSettings) -> None:
        self._pool = client.connection_pool
        self._settings = settings
        self._connection: Any = None
        self._outstanding = 0  # commands sent whose replies are not read yet
        self._ahead = False  # the last command sent asks for the next batch

    def read(self, ack: list[EntryId]) -> list[Entry]:
        """Acknowledge *ack* and return the next batch (waiting up to ``block`` seconds unless one is on its way)."""
        if not self._ahead:
            self._send(ack, self._xreadgroup(block=True))
            ack = []
        batch = stream_entries(self._receive())
        self._ahead = len(batch) == self._settings.batch_size
        if self._ahead or ack:
            self._send(ack, self._xreadgroup(block=False) if self._ahead else None)
        return batch

    def stop(self) -> bool:
        """Read what is outstanding and give the connection back; returns whether a batch was read ahead."""
        ahead = self._ahead
        if self._connection is not None:
            try:
                self._receive()
            except redis.exceptions.RedisError:
                pass
            if self._connection is not None:
                self._pool.release(self._connection)
                self._connection = None
        self._ahead = False
        return ahead

    def _xreadgroup(self, *, block: bool) -> tuple[Any, ...]:
        s = self._settings
        wait = ("BLOCK", int(s.block * 1000)) if block else ()
        return ("XREADGROUP", "GROUP", s.group, s.name, "COUNT", s.batch_size, *wait, "STREAMS", s.key, ">")

    def _send(self, ack: list[EntryId], request: tuple[Any, ...] | None) -> None:
        commands = [("XACK", self._settings.key, self._settings.group, *ack)] if ack else []
        if request is not None:
            commands.append(request)
        if self._connection is None:
            self._connection = self._pool.get_connection()
        try:
            self._connection.send_packed_command(self._connection.pack_commands(commands))
        except BaseException:
            self._drop()
            raise
        self._outstanding += len(commands)

    def _receive(self) -> Any:
        """Every outstanding reply, in order; returns the last (a server error raises, as for any command)."""
        reply = None
        try:
            while self._outstanding:
                reply = self._connection.read_response()
                self._outstanding -= 1
        except BaseException:
            self._drop()  # replies may be left unread: the connection cannot be used again
            raise
        return reply

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._pool.release(self._connection)
        self._connection = None
        self._outstanding = 0
        self._ahead = False
