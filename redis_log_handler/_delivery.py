"""Delivery: one round trip to Redis (write, classify each batch's reply, count), the retry delay, and health.

A :class:`Trip` is what one round trip carries: batches of framed documents,
from memory or from the disk spill. :meth:`Delivery.attempt` sends the batches
still open, settles those Redis answered (written, or refused for good) and
leaves the rest open for a retry. The consumer loop (``_consumer``) decides when
to retry, when to spill and when to give up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._config import Settings
from ._diagnostics import describe, report
from ._document import producer_id
from ._failover import RecentWrites
from ._ledger import Ledger
from ._redis import BatchWriter, Outcome, OutcomeUnknown, classify, create_client
from ._shards import shard_key

__all__ = ["Delivery", "Trip", "backoff_delay", "spill_due"]

BACKOFF_BASE = 0.05  # seconds; the first retry waits up to twice this
BACKOFF_CAP = 5.0


def backoff_delay(attempt: int, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry *attempt* (1, 2, ...): capped exponential backoff with full jitter."""
    return draw() * min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)


def spill_due(failing_since: float | None, now: float, spill_after: float) -> bool:
    """Whether writes have failed long enough (``spill_after`` seconds) that records should go to disk."""
    return failing_since is not None and now - failing_since >= spill_after


@dataclass(eq=False)
class Trip:
    """The records one round trip carries, as batches, oldest first, and which of them are settled."""

    batches: list[list[bytes]]
    from_disk: bool  # still on disk until the whole trip is settled (then committed)
    own: bool  # logged in this process (False: left on disk by an earlier one)
    open: list[bool] = field(init=False)
    # With wait_replicas: written by the master, not yet acknowledged by enough replicas (still open),
    # over the writer's connection number ``accepted_on``.
    accepted: list[bool] = field(init=False)
    accepted_on: int = 0
    # A trip from disk is counted only once committed: until then its records count as on disk.
    written: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.open = [True] * len(self.batches)
        self.accepted = [False] * len(self.batches)

    @classmethod
    def of(cls, records: list[bytes], batch_size: int, *, from_disk: bool = False, own: bool = True) -> Trip:
        """*records* cut into batches of *batch_size*."""
        batches = [records[start : start + batch_size] for start in range(0, len(records), batch_size)]
        return cls(batches, from_disk=from_disk, own=own)

    @property
    def records(self) -> int:
        """Records in the trip."""
        return sum(len(batch) for batch in self.batches)

    @property
    def settled(self) -> bool:
        """Whether every batch was written or refused for good."""
        return not any(self.open)

    def to_send(self) -> list[list[bytes]]:
        """The open batches the master has not accepted, in order."""
        return [self.batches[index] for index in self.indexes_to_send()]

    def indexes_to_send(self) -> list[int]:
        """The indexes of the batches :meth:`to_send` returns."""
        return [index for index, is_open in enumerate(self.open) if is_open and not self.accepted[index]]

    def unsettled_batches(self) -> list[list[bytes]]:
        """Every open batch, in order (accepted ones too: a lost master may not have replicated them)."""
        return [batch for batch, is_open in zip(self.batches, self.open, strict=True) if is_open]

    def unsettled(self) -> int:
        """Records in open batches (what ``buffered`` counts)."""
        return sum(len(batch) for batch in self.unsettled_batches())

    def awaiting_replicas(self) -> int:
        """Records the master accepted that replicas have not yet acknowledged."""
        return sum(len(batch) for batch, waiting in zip(self.batches, self.accepted, strict=True) if waiting)

    def from_oldest_unsettled(self) -> int:
        """Records from the first open batch to the end: a later batch may be written before an earlier one."""
        for index, is_open in enumerate(self.open):
            if is_open:
                return sum(len(batch) for batch in self.batches[index:])
        return 0

    def oldest(self) -> bytes | None:
        """The oldest record of the open batches, or None."""
        for batch, is_open in zip(self.batches, self.open, strict=True):
            if is_open and batch:
                return batch[0]
        return None


class NotReplicated(Exception):
    """WAIT answered with fewer replicas than ``wait_replicas``: the batches wait, and are not sent again."""


class Delivery:
    """Writes round trips over one dedicated connection (made on the runtime loop) and tracks its health."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self._settings = settings
        self._ledger = ledger
        self._writer: BatchWriter | None = None
        # With wait_replicas: the batches written lately, and those to send again to a promoted replica.
        self._recent = RecentWrites(max(settings.batch_size, settings.buffer_size // 2))
        self._again: list[list[bytes]] = []
        self.failing_since: float | None = None  # monotonic time of the first failure since the last success
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    def _ensure_writer(self) -> BatchWriter:
        if self._writer is None:
            settings = self._settings
            key = shard_key(settings.key, settings.shards, producer_id())
            self._writer = BatchWriter(create_client(settings), settings, key)
        return self._writer

    def client(self) -> Any:
        """The handler's asyncio client (for commands other than the batches: the heartbeat)."""
        return self._ensure_writer().client

    def can_resume(self) -> bool:
        """Whether the round trip in progress could go on now (its reply or room to send has come); any thread."""
        writer = self._writer
        return writer is None or writer.can_resume()

    async def connect(self) -> None:
        """Connect before the first batch, so host names resolve now rather than during interpreter exit."""
        try:
            await self._ensure_writer().prepare()
        except Exception as exc:
            self._note_error(exc)
            report(
                "connect",
                f"cannot reach Redis for {self._settings.key!r} yet ({describe(exc)}); records are buffered",
            )

    async def attempt(self, trip: Trip, timeout: float | None) -> bool:
        """Send the trip's open batches once (bounded by *timeout* if given); returns whether all are settled.

        Without a reply every open batch stays open. Once the command went out
        its outcome is unknown, and the retry may write it twice: those records
        are counted in ``retries_unknown_outcome``.
        """
        batches: list[list[bytes]] = []
        try:
            writer = self._ensure_writer()
            async with asyncio.timeout(timeout):
                if self._settings.wait_replicas:
                    await writer.prepare()  # a WAIT vouches only for writes on its own connection
                    self._after_failover(trip, writer)
                batches = trip.to_send()
                reply = await writer.write([*self._again, *batches])
        except Exception as exc:
            unknown = isinstance(exc, OutcomeUnknown)
            cause = exc.__cause__ if unknown and exc.__cause__ is not None else exc
            self._note_error(cause)
            if unknown:
                self._ledger.retries_unknown_outcome += sum(len(batch) for batch in [*self._again, *batches])
            report("retry", f"writing to {self._settings.key!r} failed ({describe(cause)}); retrying with backoff")
            return False
        self._settle(trip, self._sent_again(reply.errors), writer.generation)
        if trip.awaiting_replicas():
            if not reply.replicated:
                self._note_error(NotReplicated(f"fewer than {self._settings.wait_replicas} replicas acknowledged"))
                report("replicas", f"waiting for replicas to acknowledge records for {self._settings.key!r}")
                return False
            self._replicated(trip)
        if trip.settled:
            self.failing_since = None
        return trip.settled

    def _settle(self, trip: Trip, errors: list[Exception | None], generation: int) -> None:
        """Mark the batches Redis answered: written (or accepted, awaiting replicas), or refused for good.

        Transient refusals stay open.
        """
        for index, error in zip(trip.indexes_to_send(), errors, strict=True):
            count = len(trip.batches[index])
            if error is None:
                self._ledger.batches += 1
                if self._settings.wait_replicas:
                    trip.accepted[index], trip.accepted_on = True, generation
                else:
                    trip.open[index] = False
                    self._count(trip, count, written=True)
                continue
            self._note_error(error)
            if classify(error) is Outcome.DROP:
                trip.open[index] = False
                self._count(trip, count, written=False)
                report(
                    f"drop:{type(error).__name__}",
                    f"Redis refused {count} records for {self._settings.key!r} ({describe(error)}); "
                    "they are dropped (dropped_error) and the handler keeps running",
                )
            else:
                report("retry", f"Redis answered {describe(error)} for {self._settings.key!r}; retrying with backoff")

    def _replicated(self, trip: Trip) -> None:
        """Enough replicas acknowledged every accepted batch: they are written."""
        for index, accepted in enumerate(trip.accepted):
            if accepted:
                trip.accepted[index] = trip.open[index] = False
                self._count(trip, len(trip.batches[index]), written=True)
                self._recent.add(trip.batches[index])

    def _after_failover(self, trip: Trip, writer: BatchWriter) -> None:
        """What must go out again on this connection: accepted batches of a lost connection, and after a
        failover the batches written lately (see ``_failover``). Duplicates count as an unknown outcome.
        """
        if trip.awaiting_replicas() and trip.accepted_on != writer.generation:
            # The master that took them may be gone without having replicated them.
            self._ledger.retries_unknown_outcome += trip.awaiting_replicas()
            trip.accepted = [False] * len(trip.batches)
        again = self._recent.connected(writer.history)
        if again:
            self._ledger.retries_unknown_outcome += sum(len(batch) for batch in again)
            report(
                "failover",
                f"a replica took over as master for {self._settings.key!r}: "
                f"sending the last {sum(len(batch) for batch in again)} records written again",
            )
            self._again += again

    def _sent_again(self, errors: list[Exception | None]) -> list[Exception | None]:
        """Settle the batches sent again (kept as written lately, or kept to send once more); the rest's errors."""
        sent, self._again = self._again, []
        for batch, error in zip(sent, errors, strict=False):
            if error is None:
                self._recent.add(batch)
            elif classify(error) is Outcome.RETRY:
                self._again.append(batch)
            else:  # already counted as written once: nothing more to count
                report("failover", f"Redis refused a batch sent again for {self._settings.key!r} ({describe(error)})")
        return errors[len(sent) :]

    def _count(self, trip: Trip, count: int, *, written: bool) -> None:
        if trip.from_disk:
            if written:
                trip.written += count
            else:
                trip.refused += count
        elif written:
            self._ledger.written += count
        else:
            self._ledger.refused += count

    def _note_error(self, error: BaseException) -> None:
        self._ledger.write_errors += 1
        self._last_error = describe(error)
        self._last_error_at = time.time()
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def health(self) -> dict[str, Any]:
        """The health fields of ``stats()``."""
        writer = self._writer
        return {
            "last_error": self._last_error,
            "last_error_at": self._last_error_at,
            "connected": self.failing_since is None and writer is not None and writer.connected,
            "idempotent_writes": writer is not None and writer.idempotent,
        }

    def inherited(self) -> object:
        """What a forked child must keep alive and never touch (the connection it shares with the parent)."""
        return self._writer

    async def close(self, timeout: float) -> None:
        """Close the connection and the client, giving up after *timeout* seconds."""
        if self._writer is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._writer.close()
        except (Exception, TimeoutError):  # noqa: S110 - the handler is closed either way
            pass
