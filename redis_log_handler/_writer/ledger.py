"""The ledger: every counter of one handler, the balance they keep, and the ``stats()`` built from them.

Every record the handler accepted is, whenever no logging call is in progress, in exactly one place::

    accepted == written + dropped + buffered
    buffered == in memory + in flight (a round trip awaiting its reply) + on disk (this process's spill)

Who changes which counter:

- application threads, lock-free (:class:`Counter`): ``accepted`` per source,
  ``appended`` (into the memory buffer), ``rejected``, ``failed``,
  ``after_close``, ``internal``, ``handler_errors``;
- whoever moves records from memory to disk, holding the intake's lock
  (application threads in a burst, the drain task during an outage): ``moved``,
  ``spill_error``;
- the drain task, on the runtime loop only: ``taken``, ``written``,
  ``refused``, ``unsent``, ``batches``, ``retries``,
  ``retries_unknown_outcome``, ``write_errors``.

Mid-burst a snapshot can be short by the records inside a logging call at that
instant (``accepted`` is counted first, the buffer is appended to after the
document is built): no lock on the logging path can make it exact.

Records evicted by ``drop_oldest`` are not counted as they go (the deque evicts
them itself, atomically): they are whatever left memory without being taken by
the drain task or moved to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis_log_handler._schema.sources import SOURCES

from .counters import Counter

__all__ = ["Ledger", "Places", "SpillCounts"]


@dataclass(frozen=True, slots=True)
class Places:
    """How many records are where right now (the locations that make up ``buffered``)."""

    memory: int
    in_flight: int
    on_disk: int

    def completed(self, appended: int, in_flight: int | None = None) -> int:
        """Of *appended* records, how many have left the handler (written, or dropped and counted).

        *in_flight* stands in for :attr:`in_flight` where a trip's records count from its oldest open batch.
        """
        return appended - self.memory - (self.in_flight if in_flight is None else in_flight) - self.on_disk


@dataclass(frozen=True, slots=True)
class SpillCounts:
    """The spill's own counters, as ``stats()`` shows them."""

    spilled: int = 0
    replayed: int = 0
    recovered: int = 0
    spill_bytes: int = 0
    spill_corrupt: int = 0
    unreadable: int = 0  # records this process spilled and could not read back: dropped_error


class Ledger:
    """Every counter of one handler in one process (a forked child starts a new ledger)."""

    def __init__(self) -> None:
        self.accepted = {source: Counter() for source in SOURCES}
        self.appended = Counter()
        self.rejected = Counter()  # drop_newest, or block timed out
        self.failed = Counter()  # could not be encoded or buffered
        self.after_close = Counter()
        self.internal = Counter()
        self.handler_errors = Counter()
        self.moved = 0
        self.spill_error = 0
        self.taken = 0
        self.written = 0
        self.refused = 0  # refused by Redis for good
        self.unsent = 0  # still buffered when close_timeout ran out
        self.batches = 0
        self.retries = 0
        self.retries_unknown_outcome = 0
        self.write_errors = 0

    def evicted(self, appended: int, memory: int) -> int:
        """Records ``drop_oldest`` pushed out of memory: whatever left it without being taken or moved.

        Read *appended* before *memory*: a record appended in between can only
        make the result too small, never too large.
        """
        return max(0, appended - self.taken - self.moved - memory)

    def losses(self, appended: int, memory: int, unreadable: int) -> int:
        """Records lost for overflow or errors so far: what makes a flush return False."""
        return (
            self.evicted(appended, memory)
            + self.rejected.value()
            + self.failed.value()
            + self.refused
            + self.unsent
            + self.spill_error
            + unreadable
        )

    def stats(self, appended: int, places: Places, spill: SpillCounts, health: dict[str, Any]) -> dict[str, Any]:
        """The ``stats()`` dict: counters (exact once the handler is quiet), then *health* and *spill*."""
        by_source = {source: counter.value() for source, counter in self.accepted.items()}
        dropped_overflow = self.rejected.value() + self.evicted(appended, places.memory)
        dropped_closed = self.after_close.value() + self.unsent
        dropped_error = self.refused + self.failed.value() + self.spill_error + spill.unreadable
        dropped_internal = self.internal.value()
        return {
            "accepted": sum(by_source.values()),
            **{f"accepted_{source}": by_source[source] for source in SOURCES},
            "written": self.written,
            "buffered": places.memory + places.in_flight + places.on_disk,
            "dropped": dropped_overflow + dropped_closed + dropped_error + dropped_internal,
            "dropped_overflow": dropped_overflow,
            "dropped_closed": dropped_closed,
            "dropped_error": dropped_error,
            "dropped_internal": dropped_internal,
            "batches": self.batches,
            "retries": self.retries,
            "retries_unknown_outcome": self.retries_unknown_outcome,
            "errors": self.write_errors + self.handler_errors.value(),
            **health,
            "spilled": spill.spilled,
            "replayed": spill.replayed,
            "recovered": spill.recovered,
            "spill_bytes": spill.spill_bytes,
            "spill_corrupt": spill.spill_corrupt,
        }
