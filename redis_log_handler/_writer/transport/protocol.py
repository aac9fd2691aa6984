"""The seam between the drain and Redis: what a transport offers, and what one round trip brings back.

A :class:`Transport` carries one handler's round trips to one key (its shard):
it connects, writes batches of framed documents (each batch one atomic write)
and reads their replies, says whether a write in progress could go on now,
writes the heartbeat, and closes. ``batch_writer.BatchWriter`` is the one that
talks to Redis; ``memory.InMemoryTransport`` keeps documents in memory, with
scripted faults, for tests (``redis_log_handler.testing``). A handler builds
its transport from ``transport`` (a :data:`TransportFactory`) when one is
given, else a ``BatchWriter`` for its ``url`` or ``client``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "OutcomeUnknown",
    "ReplicationHistory",
    "RoundTripReply",
    "Transport",
    "TransportFactory",
    "TransportSettings",
]

ReplicationHistory = tuple[str, str]
"""A master's ``master_replid`` and ``master_replid2`` (the id of the history it was promoted from)."""


class TransportSettings(Protocol):
    """The handler's settings a transport to Redis reads (``WriterSettings`` has them; no import upward)."""

    @property
    def url(self) -> str | None: ...
    @property
    def client(self) -> Callable[[], Any] | None: ...
    @property
    def socket_timeout(self) -> float: ...
    @property
    def mode(self) -> str: ...
    @property
    def maxlen(self) -> int | None: ...
    @property
    def ttl(self) -> int | None: ...
    @property
    def wait_replicas(self) -> int: ...


class OutcomeUnknown(Exception):
    """A write failed after its command went out: the server may or may not have applied it."""


@dataclass(frozen=True, slots=True)
class RoundTripReply:
    """What one round trip brought back: each batch's error reply (or None), and the replicas' verdict.

    ``upkeep_errors`` are the refusals of a written batch's trim or expiry (``maxlen``, ``ttl``): the batch
    is written all the same.
    """

    errors: list[Exception | None]
    replicated: bool  # True when no replicas are awaited, else whether WAIT saw enough of them
    upkeep_errors: list[Exception] = field(default_factory=list)


@runtime_checkable
class Transport(Protocol):
    """One handler's link to its key; every coroutine runs on the runtime loop.

    ``generation`` counts connections (a ``WAIT`` vouches only for writes made
    on its own), ``history`` is the master's replication history read on the
    current connection (with ``wait_replicas``), ``idempotent`` whether the
    server deduplicates retried stream entries.
    """

    generation: int
    history: ReplicationHistory
    idempotent: bool

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""

    def can_resume(self) -> bool:
        """Whether the write in progress could go on now (room to send, or its reply has come); any thread.

        True when no write is waiting on the server.
        """

    async def prepare(self) -> None:
        """Connect now; raises the connection error (nothing was sent)."""

    async def write(self, batches: Sequence[Sequence[bytes]]) -> RoundTripReply:
        """Write *batches* (lists of framed documents) in order in one round trip and read their replies.

        Failing before anything was sent raises that error; a failure once the
        write went out raises :class:`OutcomeUnknown`. With no batches, only the
        replicas are asked (for batches accepted earlier on this connection).
        """

    async def beat(self, hash_key: str, field: str, value: str, now: float) -> None:
        """Write one heartbeat field (and remove fields stale for too long); raises on failure."""

    async def forget(self, hash_key: str, field: str) -> None:
        """Remove one heartbeat field; raises on failure."""

    async def close(self) -> None:
        """Close the connection (and a client the transport made)."""


TransportFactory = Callable[[str], Transport]
"""The ``transport`` parameter: called with the key (the shard's) on the runtime loop, returns its transport."""
