"""A counter that many threads can increment without a lock."""

from __future__ import annotations

import itertools

from redis_log_handler._shared.native import allocate_lock

__all__ = ["Counter"]


class Counter:
    """Counts events from any thread; increments take no lock.

    ``increment`` is ``itertools.count.__next__``, a single C call that the GIL
    makes atomic, so concurrent increments are never lost. Reading the value
    also advances the underlying count, so reads are serialised and subtracted.
    """

    __slots__ = ("_count", "_read_lock", "_reads", "increment")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._reads = 0
        self._read_lock = allocate_lock()  # read from the runtime's thread too
        self.increment = self._count.__next__

    def value(self) -> int:
        """Return how many times ``increment`` has been called."""
        with self._read_lock:
            value = next(self._count) - self._reads
            self._reads += 1
        return value
