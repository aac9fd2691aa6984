"""The drain task: one handler's task on the runtime loop, taking round trips from disk or memory to Redis.

Everything in here runs on the runtime loop. A round trip comes from disk while
the spill holds records (they are older), else from memory; it is delivered
with retries (``delivery``), and waiting flushes are settled after each one.
At close, whatever the deadline left unsent goes to disk or is counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis_log_handler._schema.document import document_age
from redis_log_handler._shared.diagnostics import describe, records, report, were
from redis_log_handler._shared.resp import frame, unframe
from redis_log_handler._shared.retry import retry_delay

from .delivery import Delivery, spill_due
from .flush import Flushes
from .intake import Intake
from .ledger import Ledger, Places
from .settings import WriterSettings
from .spill.spill import Spill
from .trip import Trip, trip_sizes

__all__ = ["HURRIED_RETRY", "Drain"]

_CLIENT_CLOSE_TIMEOUT = 0.5
HURRIED_RETRY = 0.1  # seconds: the longest a retry waits while a flush or close does


def _never() -> bool:
    return False


class Drain:
    """The runtime-loop side of one handler in one process."""

    def __init__(
        self,
        settings: WriterSettings,
        *,
        ledger: Ledger,
        intake: Intake,
        spill: Spill | None,
        delivery: Delivery,
        flushes: Flushes,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._intake = intake
        self._spill = spill
        self._delivery = delivery
        self._flushes = flushes
        self._trip_limit, self._trip_fill = trip_sizes(settings)
        self.trip: Trip | None = None
        self._wakeup = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._closing = False
        self._close_deadline = float("inf")

    def wake(self) -> None:
        """A record arrived for an idle drain task, or a batch is ready."""
        self._wakeup.set()

    def hurry(self) -> None:
        """A flush or close is waiting: write partial batches now and cut a retry backoff short."""
        self._wakeup.set()
        self._retry_now.set()

    def inherited(self) -> list[object]:
        """What a forked child must keep alive and never touch."""
        return [self._wakeup, self._retry_now]

    async def run(self) -> None:
        """The task: deliver round trips until closed."""
        await self._warm_up()
        while True:
            trip = await self._next_trip()
            if trip is None:
                return
            self.trip = trip
            await self._deliver(trip)
            if trip.settled or trip.from_disk:  # else cut off by the close deadline: close() takes care of it
                self.trip = None
            self.settle_flushes()

    async def _warm_up(self) -> None:
        """Adopt what earlier processes left on disk (older than anything logged now), then connect."""
        if self._spill is not None:
            try:
                adopted = self._spill.adopt()
            except OSError as exc:
                report("spill", f"cannot read the spill directory {self._spill.directory!r}: {describe(exc)}")
            else:
                if adopted:
                    report(
                        "spill",
                        f"replaying {adopted} spill segments an earlier process left for {self._settings.key!r}",
                    )
        self._intake.writer_waits = self._delivery.can_resume
        try:
            await self._delivery.connect()
        finally:
            self._intake.writer_waits = None

    def _past_close_deadline(self) -> bool:
        return self._closing and time.monotonic() >= self._close_deadline

    def _spill_due(self) -> bool:
        return self._spill is not None and spill_due(
            self._delivery.failing_since, time.monotonic(), self._settings.spill_after
        )

    async def _next_trip(self) -> Trip | None:
        """Wait until a round trip is due and take what it carries; None once closing is done.

        A round trip waits up to flush_interval for a few batches, and carries
        more when a backlog has built up: under GIL contention from application
        threads every round trip costs the drain task a few switch intervals, so
        moving more records per trip is what lets it keep up.
        """
        intake, spill = self._intake, self._spill
        batch_size = self._settings.batch_size
        limit = self._trip_limit
        while True:
            if self._past_close_deadline():
                return None  # close() accounts for what is left
            if spill is not None:
                if self._spill_due():
                    intake.move_all_to_disk()
                if spill.has_records():
                    documents, own = spill.peek(limit)
                    if documents:
                        return Trip.of([frame(document) for document in documents], batch_size, from_disk=True, own=own)
            if not len(intake):
                self.settle_flushes()
                if self._closing:
                    return None
                if intake.set_idle():
                    await self._wakeup.wait()
                intake.set_awake()
                self._wakeup.clear()
                continue
            if len(intake) < self._trip_fill and not self._closing and not self._flushes.waiting:
                await self._wait_for_a_trip()
            records = intake.take(limit)
            if records:
                return Trip.of(records, batch_size)

    async def _wait_for_a_trip(self) -> None:
        """Give a partial round trip up to flush_interval to fill (a full one, a flush or close ends the wait)."""
        self._intake.fill_wake_done()
        # Once the trip is full the wait is over, even before this thread gets the GIL to notice: from
        # then on logging threads past the high-water mark step aside for it. Until then they must not (a
        # buffer smaller than two batches has its high-water mark below the records the trip waits for).
        await self._pause(self._wakeup, self._settings.flush_interval, over=self._trip_ready)

    def _trip_ready(self) -> bool:
        return len(self._intake) >= self._trip_fill

    async def _pause(self, event: asyncio.Event, timeout: float, over: Callable[[], bool] = _never) -> None:
        """Wait for *event*, at most *timeout* seconds; logging threads step aside for it only once *over()*."""
        self._intake.writer_waits = over
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self._intake.writer_waits = None
        event.clear()

    async def _deliver(self, trip: Trip) -> None:
        """Write a trip's batches, retrying transient failures with capped exponential backoff and full jitter.

        Once writes have failed for ``spill_after`` seconds, a trip from memory
        goes to disk in front of everything there (it is older), and the memory
        buffer goes to disk behind it; a trip from disk stays there and is retried.
        """
        attempt = 0
        while True:
            timeout = max(0.0, self._close_deadline - time.monotonic()) if self._closing else None
            self._intake.writer_waits = self._delivery.can_resume
            try:
                delivered = await self._delivery.attempt(trip, timeout)
            finally:
                self._intake.writer_waits = None
            if delivered:
                break
            if self._past_close_deadline():
                return  # close() accounts for what is still in flight; a trip from disk stays there
            if self._spill_due():
                if not trip.from_disk and self._to_disk_in_front(trip):
                    self.trip = None
                    self._intake.move_all_to_disk()
                    return
                self._intake.move_all_to_disk()
            attempt += 1
            self._ledger.retries += 1
            await self._backoff(attempt)
        if trip.from_disk:
            self._commit(trip)

    def _to_disk_in_front(self, trip: Trip) -> bool:
        """Put the open batches of a trip from memory on disk, ahead of everything there; whether it worked."""
        assert self._spill is not None
        records = [record for batch in trip.unsettled_batches() for record in batch]
        return self._spill.prepend(records) == len(records)

    def _commit(self, trip: Trip) -> None:
        """Take a settled trip off the disk and count it (records of earlier processes count as recovered)."""
        assert self._spill is not None
        self._spill.commit(trip.records)
        if trip.own:
            self._ledger.written += trip.written
            self._ledger.refused += trip.refused

    async def _backoff(self, attempt: int) -> None:
        """Sleep before retry *attempt*; a flush or close request cuts the sleep short.

        While a flush or close waits, a retry is at most HURRIED_RETRY away (and never past the close
        deadline): a Redis that answers again is written to at once, not after a backoff of seconds.
        """
        delay = retry_delay(attempt)
        if self._closing or self._flushes.waiting:
            delay = min(delay, HURRIED_RETRY)
        if self._closing:
            delay = min(delay, max(0.0, self._close_deadline - time.monotonic()))
        await self._pause(self._retry_now, delay)  # waiting out a failure of Redis

    # -------------------------------------------------- positions and flush

    def places(self) -> tuple[int, Places]:
        """Records appended so far, and where the ones not yet written or dropped are."""
        appended, memory, on_disk = self._intake.places()
        trip = self.trip
        in_flight = trip.unsettled() if trip is not None and not trip.from_disk else 0
        return appended, Places(memory, in_flight, on_disk)

    def completed(self, appended: int, places: Places) -> tuple[int, int]:
        """How many appended records have left the handler (written, or dropped and counted), and the losses so far.

        Takes what :meth:`places` read.
        """
        trip = self.trip
        # A later batch of a trip can be written before an earlier one: count from the oldest still open.
        in_flight = trip.from_oldest_unsettled() if trip is not None and not trip.from_disk else 0
        unreadable = self._spill.unreadable_own if self._spill is not None else 0
        completed = places.completed(appended, in_flight)
        return completed, self._ledger.losses(appended, places.memory, unreadable)

    def settle_flushes(self) -> None:
        """Answer the flushes whose records have all left the handler."""
        if self._flushes.waiting:
            self._flushes.settle(*self.completed(*self.places()))

    # -------------------------------------------------------------- close

    async def close(self, deadline: float, task: asyncio.Task[None] | None) -> None:
        """Let the task deliver what it can until *deadline*, then keep or count what is left, and disconnect."""
        self._closing = True
        self._close_deadline = deadline
        self.hurry()
        if task is not None and not task.done():
            _, pending = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                task.cancel()
                await asyncio.wait({task})
        self._keep_or_drop_unsent()
        self.settle_flushes()
        if self._spill is not None:
            left = self._spill.pending_own
            if left:
                report(
                    "spill-left",
                    f"{records(left)} for {self._settings.key!r} stay in {self._spill.directory!r}; "
                    "the next process that logs to this key with this spill_dir replays them",
                    force=True,
                )
            self._spill.close()
        await self._delivery.close(_CLIENT_CLOSE_TIMEOUT)

    def _keep_or_drop_unsent(self) -> None:
        """What close_timeout left unsent goes to disk (with a spill, in order), else counts as dropped_closed."""
        trip, self.trip = self.trip, None
        unsent = 0
        if trip is not None and not trip.from_disk and not (self._spill is not None and self._to_disk_in_front(trip)):
            unsent += trip.unsettled()
        self._intake.move_all_to_disk()
        unsent += len(self._intake.take_all())
        self._ledger.unsent += unsent
        if unsent:
            report(
                "unsent",
                f"{records(unsent)} for {self._settings.key!r} {were(unsent)} not written before close_timeout "
                f"({self._settings.close_timeout:g}s) ran out; counted as dropped_closed",
                force=True,
            )

    def oldest_buffered_age(self) -> float | None:
        """Seconds since the oldest record not yet written was logged (from its timestamp), or None."""
        trip = self.trip
        oldest = trip.oldest() if trip is not None else None
        if oldest is None:
            oldest = self._intake.oldest()
        return None if oldest is None else document_age(unframe(oldest))
