"""A round trip: the records it carries (as batches, and which of them are settled), and how many it carries.

A :class:`Trip` holds framed documents from memory or from the disk spill, cut
into batches of ``batch_size``; each batch is open until Redis wrote it or
refused it for good (with ``wait_replicas``, until enough replicas have it:
``accepted``). The drain task builds trips (``drain``) of the sizes
:func:`trip_sizes` gives, delivery settles them (``delivery``) and the shipper
sizes the intake's wake-up hint from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .settings import WriterSettings

__all__ = ["Trip", "trip_sizes"]

_MAX_BATCHES_PER_TRIP = 16
# Batches a round trip waits for (up to flush_interval) before it leaves. Each trip costs the
# background thread its turns at the GIL, taken from the logging threads: fewer, larger trips
# leave them more (docs/benchmarks.md, "Figures behind the code").
_BATCHES_TO_FILL = 4


def trip_sizes(settings: WriterSettings) -> tuple[int, int]:
    """Records one round trip carries at most, and how many it waits for (up to flush_interval) before it leaves.

    In-flight records are outside the buffer: a trip is kept to a quarter of it (but at least one batch).
    """
    batches = max(1, min(_MAX_BATCHES_PER_TRIP, settings.buffer_size // 4 // settings.batch_size))
    return settings.batch_size * batches, settings.batch_size * min(_BATCHES_TO_FILL, batches)


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
