"""``wait_replicas``: when accepted batches count as written, and what goes again to a promoted replica.

With ``wait_replicas=N`` a batch the master accepted stays open (``Trip.accepted``)
until ``WAIT N`` (sent by the transport at the end of the round trip) says
enough replicas hold it; :class:`Replicas` then counts it written, or reports
that the trip waits.

``WAIT N`` says that N replicas hold a batch now, not that the replica promoted
later is one of them. A forced failover (``SENTINEL FAILOVER``, ``CLUSTER
FAILOVER``) leaves the old master taking writes until it is reconfigured, and
a replica not yet moved to the new master acknowledges them, then drops them
when it moves. So the writer keeps the last records it counted written, with
the replication id of the master that took them. Each time it connects it
reads the master's ``INFO replication``: a master whose ``master_replid2`` is
the old master's ``master_replid`` is a replica promoted from that history,
and the kept batches are sent to it again (duplicates are counted in
``retries_unknown_outcome``). A master with an unrelated history (a slot that
moved to another master with its keys) gets nothing again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from redis_log_handler._shared.diagnostics import describe, report
from redis_log_handler._shared.retry import Outcome, classify

from .ledger import Ledger
from .settings import WriterSettings
from .transport.protocol import ReplicationHistory
from .trip import Trip

__all__ = ["NotReplicated", "RecentWrites", "Replicas"]


class RecentWrites:
    """Whole batches covering the last *limit* records counted written, with their master's replication id."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._batches: deque[list[bytes]] = deque()
        self._records = 0
        self._replid: str | None = None  # the master that took the kept batches

    def add(self, batch: list[bytes]) -> None:
        """Keep *batch*, written to the current master; forget the oldest batches the limit no longer needs."""
        self._batches.append(batch)
        self._records += len(batch)
        while self._records - len(self._batches[0]) >= self._limit:
            self._records -= len(self._batches.popleft())

    def connected(self, history: ReplicationHistory) -> list[list[bytes]]:
        """The writer is connected to a master with *history*: the kept batches it must be sent again, if any."""
        replid, promoted_from = history
        previous, self._replid = self._replid, replid
        if previous is None or previous == replid:
            return []  # the first master, or the same one again
        batches = list(self._batches)
        self._batches.clear()
        self._records = 0
        return batches if promoted_from == previous else []


class NotReplicated(Exception):
    """WAIT answered with fewer replicas than ``wait_replicas``: the batches wait, and are not sent again."""


class Replicas:
    """One handler's replica bookkeeping: batches written lately, and those to send again on this connection."""

    def __init__(self, settings: WriterSettings, ledger: Ledger, count: Callable[..., None]) -> None:
        self._settings = settings
        self._ledger = ledger
        self._count = count  # Delivery's: counts records of a trip written (or refused)
        self._recent = RecentWrites(max(settings.batch_size, settings.buffer_size // 2))
        self.again: list[list[bytes]] = []  # sent in front of the next round trip's batches

    def before_sending(self, trip: Trip, generation: int, history: ReplicationHistory) -> None:
        """What must go out again on connection *generation*: accepted batches of a lost connection, and after a
        failover the batches written lately. Duplicates count as an unknown outcome.
        """
        if trip.awaiting_replicas() and trip.accepted_on != generation:
            # The master that took them may be gone without having replicated them.
            self._ledger.retries_unknown_outcome += trip.awaiting_replicas()
            trip.accepted = [False] * len(trip.batches)
        again = self._recent.connected(history)
        if again:
            self._ledger.retries_unknown_outcome += sum(len(batch) for batch in again)
            report(
                "failover",
                f"a replica took over as master for {self._settings.key!r}: "
                f"sending the last {sum(len(batch) for batch in again)} records written again",
            )
            self.again += again

    def settle_sent_again(self, errors: list[Exception | None]) -> list[Exception | None]:
        """Settle the batches sent again (kept as written lately, or kept to send once more); the rest's errors."""
        sent, self.again = self.again, []
        for batch, error in zip(sent, errors, strict=False):
            if error is None:
                self._recent.add(batch)
            elif classify(error) is Outcome.RETRY:
                self.again.append(batch)
            else:  # already counted as written once: nothing more to count
                report("failover", f"Redis refused a batch sent again for {self._settings.key!r} ({describe(error)})")
        return errors[len(sent) :]

    def settle(self, trip: Trip, *, replicated: bool) -> NotReplicated | None:
        """The replicas' verdict on the batches the master accepted: written, or the error the trip waits on."""
        if not replicated:
            report("replicas", f"waiting for replicas to acknowledge records for {self._settings.key!r}")
            return NotReplicated(f"fewer than {self._settings.wait_replicas} replicas acknowledged")
        for index, accepted in enumerate(trip.accepted):
            if accepted:
                trip.accepted[index] = trip.open[index] = False
                self._count(trip, len(trip.batches[index]), written=True)
                self._recent.add(trip.batches[index])
        return None
