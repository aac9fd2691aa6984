"""Delivery: what Redis's replies mean for a round trip's batches (written, refused, retried), counted; health.

:meth:`Delivery.attempt` hands a trip's open batches to the transport (which
sends them and reads the replies), settles those Redis answered (written, or
refused for good), asks ``replicas`` about the ones awaiting replicas, and
leaves the rest open for a retry. The drain task (``drain``) decides when to
retry, when to spill and when to give up (the delay is ``_shared.retry``'s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis_log_handler._schema.document import producer_id
from redis_log_handler._shared.diagnostics import describe, records, report
from redis_log_handler._shared.retry import Outcome, classify
from redis_log_handler._shared.shards import shard_key

from .backpressure import loop_could_run
from .ledger import Ledger
from .replicas import Replicas
from .settings import WriterSettings
from .transport.batch_writer import BatchWriter, create_client
from .transport.protocol import OutcomeUnknown, Transport
from .trip import Trip

__all__ = ["Delivery", "spill_due"]


def spill_due(failing_since: float | None, now: float, spill_after: float) -> bool:
    """Whether writes have failed long enough (``spill_after`` seconds) that records should go to disk."""
    return failing_since is not None and now - failing_since >= spill_after


class Delivery:
    """Writes round trips through the handler's transport (made on the runtime loop) and tracks its health."""

    def __init__(self, settings: WriterSettings, ledger: Ledger) -> None:
        self._settings = settings
        self._ledger = ledger
        self._transport: Transport | None = None
        self._replicas = Replicas(settings, ledger, self._count)
        self.failing_since: float | None = None  # monotonic time of the first failure since the last success
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    def _ensure_transport(self) -> Transport:
        if self._transport is None:
            settings = self._settings
            key = shard_key(settings.key, settings.shards, producer_id())
            if settings.transport is not None:
                self._transport = settings.transport(key)
            else:
                self._transport = BatchWriter(create_client(settings), settings, key, loop_could_run=loop_could_run)
        return self._transport

    def transport(self) -> Transport:
        """The handler's transport (for writes other than the batches: the heartbeat)."""
        return self._ensure_transport()

    def can_resume(self) -> bool:
        """Whether the round trip in progress could go on now (its reply or room to send has come); any thread."""
        transport = self._transport
        return transport is None or transport.can_resume()

    async def connect(self) -> None:
        """Connect before the first batch, so host names resolve now rather than during interpreter exit."""
        try:
            await self._ensure_transport().prepare()
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
            transport = self._ensure_transport()
            async with asyncio.timeout(timeout):
                if self._settings.wait_replicas:
                    await transport.prepare()  # a WAIT vouches only for writes on its own connection
                    self._replicas.before_sending(trip, transport.generation, transport.history)
                batches = trip.to_send()
                reply = await transport.write([*self._replicas.again, *batches])
        except Exception as exc:
            unknown = isinstance(exc, OutcomeUnknown)
            cause = exc.__cause__ if unknown and exc.__cause__ is not None else exc
            self._note_error(cause)
            if unknown:
                self._ledger.retries_unknown_outcome += sum(len(batch) for batch in [*self._replicas.again, *batches])
            report("retry", f"writing to {self._settings.key!r} failed ({describe(cause)}); retrying with backoff")
            return False
        for error in reply.upkeep_errors:  # the batch is written: only reported
            report("upkeep", f"Redis refused to trim or expire {self._settings.key!r} ({describe(error)})")
        self._settle(trip, self._replicas.settle_sent_again(reply.errors), transport.generation)
        if trip.awaiting_replicas():
            not_replicated = self._replicas.settle(trip, replicated=reply.replicated)
            if not_replicated is not None:
                self._note_error(not_replicated)
                return False
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
                    f"Redis refused {records(count)} for {self._settings.key!r} ({describe(error)}); "
                    "they are dropped (dropped_error) and the handler keeps running",
                )
            else:
                report("retry", f"Redis answered {describe(error)} for {self._settings.key!r}; retrying with backoff")

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
        transport = self._transport
        return {
            "last_error": self._last_error,
            "last_error_at": self._last_error_at,
            "connected": self.failing_since is None and transport is not None and transport.connected,
            "idempotent_writes": transport is not None and transport.idempotent,
        }

    def inherited(self) -> object:
        """What a forked child must keep alive and never touch (the connection it shares with the parent)."""
        return self._transport

    async def close(self, timeout: float) -> None:
        """Close the connection and the client, giving up after *timeout* seconds."""
        if self._transport is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._transport.close()
        except (Exception, TimeoutError):  # noqa: S110 - the handler is closed either way
            pass
