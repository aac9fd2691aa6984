"""The intake: the bounded memory buffer between the application's threads and the drain task.

Application threads call :meth:`Intake.put` with a framed document. The buffer
is a ``collections.deque`` (``append`` and ``popleft`` are atomic), so the
common case takes no lock. When the buffer is full:

- with a disk spill, the calling thread moves the oldest records to disk (a
  chunk at a time, under the intake's lock) and carries on: nothing is
  dropped while the disk has room;
- otherwise, or when the spill is full or paused, the overflow policy
  decides: ``drop_oldest`` evicts the oldest record, ``drop_newest`` refuses
  the new one, ``block`` waits up to ``block_timeout`` for room.

Order: records move to disk only from the head of the buffer, so everything on
disk is older than everything in memory, and the drain task empties the disk
before it takes from memory again (:meth:`Intake.take` checks that under the
same lock the movers hold). One process's records thus reach Redis in the order
they were accepted: memory, then disk, then Redis.

Past one round trip's records (the high-water mark: the most one round trip
carries, at most half the buffer) a logging call steps aside for the writer when
the writer could run (see ``backpressure``): under sustained load the
application's threads slow down instead of the buffer overflowing, and what the
writer has yet to send stays about one round trip, which it can send at once.

This module knows nothing of asyncio, the runtime, Redis or the spill's files:
the spill is a :class:`DiskTail` and waking the drain task is a callback.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from redis_log_handler._shared.native import Condition

from .backpressure import step_aside
from .ledger import Ledger

__all__ = ["DiskTail", "Intake"]

# Records one move to disk carries: large enough to amortise the write, small enough
# that the logging call that pays for it stays well under a millisecond.
_MOVE_CHUNK = 256
# The longest a logging call waits for the writer's turn (back-pressure under sustained load).
_STEP_ASIDE_SECONDS = 0.001


class DiskTail(Protocol):
    """Where the intake moves records when memory is full: the tail of the disk spill."""

    def store(self, frames: list[bytes]) -> int:
        """Append *frames* in order; return how many were stored (a prefix: the rest did not fit). Never raises."""
        ...

    def has_records(self) -> bool:
        """Whether anything waits on disk (to be sent before memory)."""
        ...

    def pending(self) -> int:
        """Records of this process waiting on disk."""
        ...


class Intake:
    """One handler's memory buffer, overflow policy, wake hints and back-pressure, in one process."""

    def __init__(
        self,
        *,
        capacity: int,
        trip_limit: int,
        trip_fill: int,
        overflow: str,
        block_timeout: float,
        ledger: Ledger,
        disk: DiskTail | None,
        wake: Callable[[], None],
    ) -> None:
        self.capacity = capacity
        self._trip_fill = trip_fill
        self._block_timeout = block_timeout
        self._ledger = ledger
        self._appended = ledger.appended.increment
        self._disk = disk
        self._wake = wake
        self._drop_oldest = overflow == "drop_oldest"
        self._block = overflow == "block"
        # Without a disk, drop_oldest lets the deque evict the oldest record itself,
        # atomically and exactly at capacity. Every other case checks the length
        # first, so the buffer can exceed capacity by one record per thread
        # appending at that instant.
        self._evicts_itself = self._drop_oldest and disk is None
        self._buffer: deque[bytes] = deque(maxlen=capacity if self._evicts_itself else None)
        # Held to move records to disk, to take from memory while a disk is
        # configured, and to wait for room under overflow="block". Native: the
        # runtime's thread takes it too, also where gevent patched threading.
        self._lock = Condition()
        # Wake hints, read and written by application threads and the drain task
        # without a lock. A lost race costs at most one extra or one late wake:
        # the drain task re-checks the buffer after publishing that it is idle,
        # and a partial round trip leaves after flush_interval in any case.
        self._idle = True  # the first record wakes the drain task (and starts it)
        self._fill_wake_sent = False
        self._closed = False
        # Back-pressure (see _step_aside): past this backlog a logging thread lets a writer that could run run.
        # More than a round trip carries means the writer is behind; half the buffer is kept for what Redis
        # itself is slow to take (why not half the buffer alone: docs/benchmarks.md, "Figures behind the code").
        self._high_water = max(1, min(capacity // 2, trip_limit))
        # The backlog at which put() has something to do: a full round trip to announce, or the high-water mark.
        self._attention = min(trip_fill, self._high_water)
        self.writer_waits: Callable[[], bool] | None = None
        """Set by the drain task while it waits (on Redis, out a retry backoff, for a round trip to fill): tells
        whether what it waits for has come (then it could run). None while it can run. Read by logging
        threads without a lock."""

    # ------------------------------------------------------ application threads

    def put(self, framed: bytes) -> None:
        """Buffer one framed document, applying the overflow policy; never waits on Redis."""
        buffer = self._buffer
        if not self._evicts_itself and len(buffer) >= self.capacity and not self._make_room():
            return
        buffer.append(framed)
        self._appended()
        if self._idle or len(buffer) >= self._attention:  # one comparison on the common path
            self._attend(len(buffer))

    def _attend(self, backlog: int) -> None:
        """Wake the drain task (idle, or a round trip is full), and step aside past the high-water mark."""
        if self._idle:
            self._idle = False
            self._wake()
        elif not self._fill_wake_sent and backlog >= self._trip_fill:
            self._fill_wake_sent = True
            self._attention = self._high_water
            self._wake()
        if backlog >= self._high_water:
            self._step_aside()

    def _step_aside(self) -> None:
        """Past the high-water mark, wait (at most _STEP_ASIDE_SECONDS) for the writer's turn if it could run.

        Back-pressure instead of drops: see ``backpressure`` for why the writer
        needs it. Never while the writer waits on Redis (a reply that has not
        come, a retry backoff): the logging call never waits on Redis.
        """
        step_aside(self._writer_behind, _STEP_ASIDE_SECONDS)

    def _writer_behind(self) -> bool:
        """Whether the backlog is past the high-water mark while the writer could run."""
        waits = self.writer_waits
        return len(self._buffer) >= self._high_water and (waits is None or waits())

    def _make_room(self) -> bool:
        """The buffer is full: move records to disk, else apply the policy. Returns whether to append."""
        if self._disk is not None:
            with self._lock:
                if len(self._buffer) < self.capacity or self._move_to_disk(_MOVE_CHUNK):
                    return True
                if self._drop_oldest:  # the disk is full or paused: evict as the deque would
                    self._buffer.popleft()
                    return True
        if self._block and self._wait_for_room():
            return True
        self._ledger.rejected.increment()
        return False

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self._block_timeout
        with self._lock:
            while len(self._buffer) >= self.capacity:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._lock.wait(remaining, cooperative=True)  # under gevent, other greenlets run meanwhile
        return True

    def close(self) -> None:
        """Release callers waiting for room (they give up); later records are refused by the handler."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    # ----------------------------------------------------- moving to disk (locked)

    def _move_to_disk(self, count: int) -> int:
        """Move up to *count* of the oldest records to disk; what the disk does not take goes back. Holds the lock."""
        assert self._disk is not None
        buffer = self._buffer
        popleft = buffer.popleft
        chunk = [popleft() for _ in range(min(count, len(buffer)))]
        if not chunk:
            return 0
        # Until the chunk is on disk or back at the head, the room it left is not room: logging threads
        # that look meanwhile (they append without this lock) find the buffer full and wait for the lock.
        # Otherwise a disk that refuses puts the chunk back over their records, past the capacity.
        self.capacity -= len(chunk)
        try:
            stored = self._disk.store(chunk)
            if stored < len(chunk):
                buffer.extendleft(reversed(chunk[stored:]))  # back at the head, in order
        finally:
            self.capacity += len(chunk)
        self._ledger.moved += stored
        return stored

    def move_all_to_disk(self) -> int:
        """Move the whole buffer to disk (the drain task, during an outage or at close); returns how many moved."""
        if self._disk is None:
            return 0
        with self._lock:
            moved = self._move_to_disk(len(self._buffer))
            if self._block:
                self._lock.notify_all()
        return moved

    # --------------------------------------------------------------- drain task

    def __len__(self) -> int:
        return len(self._buffer)

    def oldest(self) -> bytes | None:
        """The oldest buffered frame, or None."""
        try:
            return self._buffer[0]
        except IndexError:
            return None

    def take(self, limit: int) -> list[bytes]:
        """Pop up to *limit* of the oldest records for a round trip (None of them if the disk holds older ones)."""
        with self._lock:
            if self._disk is not None and self._disk.has_records():
                return []
            records = self._pop(limit)
            if self._block:
                self._lock.notify_all()  # callers waiting for room
        return records

    def _pop(self, limit: int) -> list[bytes]:
        buffer = self._buffer
        count = min(limit, len(buffer))
        self._ledger.taken += count  # before popping: a reader then sees too few evictions, never too many
        popleft = buffer.popleft
        return [popleft() for _ in range(count)]

    def take_all(self) -> list[bytes]:
        """Pop everything buffered (at close, once nothing more can be sent)."""
        return self.take(len(self._buffer))

    def set_idle(self) -> bool:
        """Publish that the drain task is about to sleep; False if a record arrived meanwhile (do not sleep)."""
        self._idle = True
        if self._buffer:
            self._idle = False
            return False
        return True

    def set_awake(self) -> None:
        """The drain task woke up (for whatever reason): records need not wake it."""
        self._idle = False

    def fill_wake_done(self) -> None:
        """The drain task is waiting for a round trip to fill: let the record that fills it wake the drain task."""
        self._fill_wake_sent = False
        self._attention = min(self._trip_fill, self._high_water)

    def places(self) -> tuple[int, int, int]:
        """``(appended, in memory, on disk)``, read consistently with moves to disk (appends may still come)."""
        appended = self._ledger.appended.value()  # first: a later append only makes the picture conservative
        if self._disk is None:
            return appended, len(self._buffer), 0
        with self._lock:
            return appended, len(self._buffer), self._disk.pending()
