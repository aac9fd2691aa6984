"""A handler's bounded buffer and the consumer task that drains it into Redis in batches.

Application threads only append encoded documents to a ``collections.deque``
(atomic, no lock) and bump lock-free counters. The consumer runs on the shared
runtime loop, pops batches and writes each with one round trip. Counters that
only the consumer changes are plain ints; the rest are :class:`Counter`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._config import Settings
from ._counters import Counter
from ._diagnostics import describe, report
from ._document import document_age
from ._fork import after_fork_in_child, catch_up, current_pid
from ._redis import BatchWriter, Outcome, OutcomeUnknown, classify, create_client, frame, unframe
from ._runtime import Runtime, get_runtime, keep_inherited, loop_thread_id
from ._spill import Spill

__all__ = ["Shipper"]

_BACKOFF_BASE = 0.05  # seconds; the first retry waits up to twice this
_BACKOFF_CAP = 5.0
_CLOSE_GRACE = 0.5  # seconds a closing caller waits past the deadline for the loop to finish up
_CLIENT_CLOSE_TIMEOUT = 0.5
_MAX_BATCHES_PER_TRIP = 16
_SPILL_PAUSE = 30.0  # seconds without spilling after the disk refused a write


def _noop() -> None:
    return None


@dataclass(eq=False)
class _Trip:
    """The records one round trip carries, as batches; ``batches`` shrinks to those still to retry."""

    batches: list[list[bytes]]
    from_spill: bool  # still on disk until the whole trip is settled (then committed)
    own: bool  # logged in this process (False: left on disk by an earlier one)
    records: int = field(init=False)
    # A trip from the spill is counted only once committed: until then its records count as on disk.
    written: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.records = sum(len(batch) for batch in self.batches)


def _split(records: list[bytes], batch_size: int) -> list[list[bytes]]:
    return [records[start : start + batch_size] for start in range(0, len(records), batch_size)]


class Shipper:
    """Buffers encoded documents and ships them to Redis from the runtime loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._closed = False
        self._pid = current_pid()
        self._reset()
        self_ref = weakref.WeakMethod(self._reset_in_child)

        def reset_in_child() -> None:
            reset = self_ref()
            if reset is not None:
                reset()

        after_fork_in_child(reset_in_child)
        if self._spill is not None and self._spill.has_segments_on_disk():
            self._start()  # replay what an earlier process left, even if this one never logs

    def _reset_in_child(self) -> None:
        """Replace all per-process state in a forked child.

        The child starts with an empty buffer and fresh counters: the parent
        still owns and sends what it had buffered. The inherited client, task
        and locks are never touched (nor garbage-collected: see keep_inherited).
        """
        keep_inherited(self._writer, self._task, self._wakeup, self._retry_now)
        if self._spill is not None:
            self._spill.close()
        self._pid = current_pid()
        self._reset()

    def _reset(self) -> None:
        """Set up all per-process state."""
        settings = self._settings
        self._drop_oldest = settings.overflow == "drop_oldest"
        # In-flight records are outside the buffer: keep them to a quarter of it (but at least one batch).
        self._batches_per_trip = max(1, min(_MAX_BATCHES_PER_TRIP, settings.buffer_size // 4 // settings.batch_size))
        self._block = settings.overflow == "block"
        # drop_oldest: the deque itself evicts the oldest record atomically.
        # The other policies check the length first, so the buffer can exceed
        # buffer_size by at most one record per thread appending at that instant.
        self._buffer: deque[bytes] = deque(maxlen=settings.buffer_size if self._drop_oldest else None)
        self._space = threading.Condition(threading.Lock())
        self._start_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._started = False
        self._runtime: Runtime | None = None
        self._flush_budget_deadline: float | None = None

        # Counted from any thread.
        self._accepted = Counter()
        self._enqueued = Counter()  # incremented after the append (see _completed_position)
        self._rejected = Counter()  # drop_newest, or block timed out
        self._dropped_after_close = Counter()
        self._dropped_internal = Counter()
        self._dropped_failed = Counter()
        self._handler_errors = Counter()

        # Changed on the runtime loop only.
        self._dequeued = 0
        self._in_flight = 0  # records popped from memory and not yet written, dropped or spilled
        self._trip: _Trip | None = None
        self._written = 0
        self._batches = 0
        self._retries = 0
        self._retries_unknown_outcome = 0
        self._write_errors = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._failing_since: float | None = None  # monotonic time of the first failure since the last success
        self._dropped_error = 0
        self._dropped_unsent = 0
        self._spill = (
            Spill(settings.spill_dir, settings.key, settings.mode, settings.spill_max_bytes)
            if settings.spill_dir is not None
            else None
        )
        # Half a buffer waiting means Redis is not keeping up: time to spill (never without a spill).
        self._spill_watermark = max(1, settings.buffer_size // 2) if self._spill is not None else sys.maxsize
        self._spill_wake_sent = False
        self._spill_paused_until = 0.0
        self._dropped_spill_full = 0
        self._dropped_spill_error = 0
        self._consumer_idle = False
        self._batch_wake_sent = False
        self._closing = False
        self._close_deadline = float("inf")
        self._waiters: list[tuple[int, int, concurrent.futures.Future[bool]]] = []
        # Lost records (see _lost_records) a finished flush has already accounted
        # for: a flush returns False only for losses since the previous one finished.
        self._drops_acknowledged = 0
        self._writer: BatchWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._retry_now: asyncio.Event | None = None

    # ----------------------------------------------------------- hot path

    def accept(self, pid: int | None) -> bool:
        """Count a record handed to the handler; False (and counted as dropped) if it must not be buffered.

        *pid* is the process id the record was made in (None if unknown): a
        new one means a fork that ran no at-fork hooks, caught up with here.
        """
        if pid is not None and pid != self._pid:
            catch_up()
        self._accepted.increment()
        if self._closed:
            self._dropped_after_close.increment()
            return False
        if threading.get_ident() == loop_thread_id():
            # Logged by redis-py, asyncio or this library on the runtime
            # thread: writing it would feed the handler its own output.
            self._dropped_internal.increment()
            return False
        return True

    def count_internal(self) -> None:
        """Count a record logged from inside the handler itself: accepted, and dropped as internal."""
        self._accepted.increment()
        self._dropped_internal.increment()

    def count_failed(self) -> None:
        """Count an accepted record that could not be encoded or buffered (an error, reported by the caller)."""
        self._dropped_failed.increment()

    def count_handler_error(self) -> None:
        """Count an error reported through ``Handler.handleError``."""
        self._handler_errors.increment()

    def put(self, document: bytes) -> None:
        """Append an encoded document, applying the overflow policy; never waits on Redis."""
        if not self._started:
            self._start()
        buffer = self._buffer
        if (
            not self._drop_oldest
            and len(buffer) >= self._settings.buffer_size
            and not (self._block and self._wait_for_space())
        ):
            self._rejected.increment()
            return
        buffer.append(frame(document))
        self._enqueued.increment()
        if self._consumer_idle:
            self._consumer_idle = False
            self._wake()
        elif not self._batch_wake_sent and len(buffer) >= self._settings.batch_size:
            self._batch_wake_sent = True
            self._wake()
        elif not self._spill_wake_sent and len(buffer) >= self._spill_watermark:
            self._spill_wake_sent = True
            self._wake(spill=True)

    def _wait_for_space(self) -> bool:
        deadline = time.monotonic() + self._settings.block_timeout
        with self._space:
            while len(self._buffer) >= self._settings.buffer_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._space.wait(remaining)
        return True

    def _wake(self, *, spill: bool = False) -> None:
        runtime = self._runtime
        if runtime is not None:
            try:
                runtime.call_soon(self._on_wake, spill)
            except RuntimeError:  # the loop is closed: interpreter exit is under way
                pass

    def _on_wake(self, spill: bool) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        if spill and self._retry_now is not None:
            self._retry_now.set()  # a consumer waiting out a backoff spills now (see _deliver)

    # ------------------------------------------------------------ startup

    def _start(self) -> None:
        runtime = get_runtime()  # outside the lock: starting the runtime logs
        with self._start_lock:
            if self._started:
                return
            self._runtime = runtime
            runtime.call_soon(self._launch)
            self._started = True

    def _launch(self) -> None:
        self._wakeup = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._consume())
        self._task.add_done_callback(self._consumer_finished)

    def _consumer_finished(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            report("consumer", f"the consumer for {self._settings.key!r} stopped: {describe(error)}", force=True)

    # ----------------------------------------------------------- consumer

    async def _consume(self) -> None:
        await self._warm_up()
        while True:
            trip = await self._next_trip()
            if trip is None:
                return
            self._trip = trip
            await self._deliver(trip)
            if not trip.batches:  # else cut off by the close deadline: _shutdown takes care of it
                self._trip = None
            self._settle_waiters()

    async def _warm_up(self) -> None:
        """Connect before the first batch, so host names resolve now rather than during interpreter exit.

        Also adopts what earlier processes left in the spill directory: it is
        older than anything logged now, so it is replayed first.
        """
        if self._spill is not None:
            try:
                adopted = self._spill.adopt()
            except OSError as exc:
                report("spill", f"cannot read the spill directory {self._settings.spill_dir!r}: {describe(exc)}")
            else:
                if adopted:
                    report(
                        "spill",
                        f"replaying {adopted} spill segments an earlier process left for {self._settings.key!r}",
                    )
        try:
            writer = self._ensure_writer()
            await writer.prepare()
        except Exception as exc:
            self._note_error(exc)
            report(
                "connect", f"cannot reach Redis for {self._settings.key!r} yet ({describe(exc)}); records are buffered"
            )

    def _ensure_writer(self) -> BatchWriter:
        if self._writer is None:
            self._writer = BatchWriter(create_client(self._settings), self._settings)
        return self._writer

    async def _next_trip(self) -> _Trip | None:
        """Wait until a batch is due and take what one round trip carries; None once closing is done.

        Spilled records are older than anything in memory, so while the spill
        holds records, trips come from it. A round trip carries one batch, or
        several when a backlog has built up: under GIL contention from
        application threads every round trip costs the consumer a few switch
        intervals, so moving more records per trip is what lets it keep up
        with a burst.
        """
        assert self._wakeup is not None
        buffer = self._buffer
        batch_size = self._settings.batch_size
        limit = batch_size * self._batches_per_trip
        while True:
            if self._closing and time.monotonic() >= self._close_deadline:
                return None  # _shutdown accounts for what is left
            spill = self._spill
            if spill is not None:
                if buffer and self._should_spill():
                    self._spill_out([])
                if spill.has_records:
                    records, own = spill.peek(limit)
                    if records:
                        return _Trip(_split(records, batch_size), from_spill=True, own=own)
            if not buffer:
                self._settle_waiters()
                if self._closing:
                    return None
                self._consumer_idle = True
                if not buffer:  # re-check after publishing idleness: put() reads the flag after appending
                    await self._wakeup.wait()
                self._consumer_idle = False
                self._wakeup.clear()
                continue
            if len(buffer) < batch_size and not self._closing and not self._waiters:
                self._batch_wake_sent = False
                try:
                    async with asyncio.timeout(self._settings.flush_interval):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
                self._wakeup.clear()
            records = self._pop(min(len(buffer), limit))
            self._in_flight = len(records)
            return _Trip(_split(records, batch_size), from_spill=False, own=True)

    def _pop(self, count: int) -> list[bytes]:
        popleft = self._buffer.popleft
        records = [popleft() for _ in range(count)]
        self._dequeued += count
        if self._block:
            with self._space:
                self._space.notify_all()
        return records

    async def _deliver(self, trip: _Trip) -> None:
        """Write a trip's batches, retrying transient failures with capped exponential backoff and full jitter.

        When the spill is due (see _should_spill), a trip from memory goes to
        disk instead of being retried, and a trip from the spill keeps being
        retried while the memory buffer goes to disk behind it.
        """
        attempt = 0
        while trip.batches:
            try:
                writer = self._ensure_writer()
                # Only a closing handler bounds the write by its deadline (no timeout otherwise).
                remaining = max(0.0, self._close_deadline - time.monotonic()) if self._closing else None
                async with asyncio.timeout(remaining):
                    errors = await writer.write(trip.batches)
            except Exception as exc:
                # No reply: every batch is retried. Once the command went out
                # its outcome is unknown, and the retry may write it twice.
                unknown = isinstance(exc, OutcomeUnknown)
                cause = exc.__cause__ if unknown and exc.__cause__ is not None else exc
                self._note_error(cause)
                if unknown:
                    self._retries_unknown_outcome += sum(len(batch) for batch in trip.batches)
                report("retry", f"writing to {self._settings.key!r} failed ({describe(cause)}); retrying with backoff")
            else:
                self._settle_batches(trip, errors)
                if not trip.batches:
                    self._failing_since = None
                    break
            if self._closing and time.monotonic() >= self._close_deadline:
                return  # _shutdown accounts for what is still in flight; a spill trip stays on disk
            if self._should_spill():
                if not trip.from_spill:
                    self._spill_out(trip.batches)
                    trip.batches = []
                    return
                self._spill_out([])
            attempt += 1
            self._retries += 1
            await self._backoff(attempt)
        if trip.from_spill:
            self._commit(trip)

    def _settle_batches(self, trip: _Trip, errors: list[Exception | None]) -> None:
        """Count the trip's written and refused batches; keep those to retry, in order."""
        retry = []
        for batch, error in zip(trip.batches, errors, strict=True):
            if error is None:
                self._batches += 1
                self._count_settled(trip, len(batch), written=True)
                continue
            self._note_error(error)
            if classify(error) is Outcome.DROP:
                self._count_settled(trip, len(batch), written=False)
                report(
                    f"drop:{type(error).__name__}",
                    f"Redis refused {len(batch)} records for {self._settings.key!r} ({describe(error)}); "
                    "they are dropped (dropped_error) and the handler keeps running",
                )
            else:
                retry.append(batch)
                report("retry", f"Redis answered {describe(error)} for {self._settings.key!r}; retrying with backoff")
        trip.batches = retry

    def _count_settled(self, trip: _Trip, count: int, *, written: bool) -> None:
        if trip.from_spill:
            if written:
                trip.written += count
            else:
                trip.refused += count
            return
        self._in_flight -= count
        if written:
            self._written += count
        else:
            self._dropped_error += count

    def _commit(self, trip: _Trip) -> None:
        """Take a settled trip off the disk and count it (records of earlier processes count as recovered)."""
        assert self._spill is not None
        self._spill.commit(trip.records)
        if trip.own:
            self._written += trip.written
            self._dropped_error += trip.refused

    # -------------------------------------------------------------- spill

    def _should_spill(self) -> bool:
        """Whether records should go to disk now: the buffer is half full, or Redis has failed for spill_after."""
        if self._spill is None or time.monotonic() < self._spill_paused_until:
            return False
        if len(self._buffer) >= self._spill_watermark:
            return True
        failing_since = self._failing_since
        return failing_since is not None and time.monotonic() - failing_since >= self._settings.spill_after

    def _spill_out(self, batches: list[list[bytes]]) -> None:
        """Move *batches* (popped from memory, oldest) and then the whole memory buffer to the spill."""
        assert self._spill is not None
        in_flight = sum(len(batch) for batch in batches)
        records = [record for batch in batches for record in batch]
        records += self._pop(len(self._buffer))
        self._in_flight -= in_flight
        self._spill_wake_sent = False
        if not records:
            return
        try:
            taken = self._spill.append(records)
        except OSError as exc:
            # Whatever a failed write left on disk is a torn segment tail, skipped on replay.
            self._dropped_spill_error += len(records)
            self._spill_paused_until = time.monotonic() + _SPILL_PAUSE
            report(
                "spill-error",
                f"writing {len(records)} records for {self._settings.key!r} to {self._settings.spill_dir!r} failed "
                f"({describe(exc)}); they are dropped (dropped_error) and spilling pauses for {_SPILL_PAUSE:g}s",
                force=True,
            )
            return
        if taken < len(records):
            self._dropped_spill_full += len(records) - taken
            report(
                "spill-full",
                f"the spill for {self._settings.key!r} reached spill_max_bytes ({self._settings.spill_max_bytes}); "
                f"{len(records) - taken} newer records are dropped (dropped_overflow)",
            )

    def _note_error(self, error: BaseException) -> None:
        self._write_errors += 1
        self._last_error = describe(error)
        self._last_error_at = time.time()
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    async def _backoff(self, attempt: int) -> None:
        """Sleep before retry *attempt*; a flush or close request cuts the sleep short."""
        assert self._retry_now is not None
        delay = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
        if self._closing:
            delay = min(delay, max(0.0, self._close_deadline - time.monotonic()))
        try:
            async with asyncio.timeout(delay):
                await self._retry_now.wait()
        except TimeoutError:
            pass
        self._retry_now.clear()

    # -------------------------------------------------------------- flush

    def _completed_position(self) -> int:
        """How many enqueued records have left the handler (written, or dropped and counted).

        Reads the enqueue count before the buffer length: a record appended in
        between can only make the result too small, never too large.
        """
        enqueued = self._enqueued.value()
        return enqueued - len(self._buffer) - self._in_flight - self._spilled_pending()

    def _spilled_pending(self) -> int:
        return self._spill.pending_own if self._spill is not None else 0

    def _evicted(self, enqueued: int, buffered: int) -> int:
        """Records ``drop_oldest`` pushed out of the full buffer: whatever left it without being popped."""
        return max(0, enqueued - self._dequeued - buffered) if self._drop_oldest else 0

    def _lost_records(self) -> int:
        """Records dropped for overflow or errors so far: what makes a flush return False."""
        return (
            self._evicted(self._enqueued.value(), len(self._buffer))
            + self._rejected.value()
            + self._dropped_failed.value()
            + self._dropped_error
            + self._dropped_unsent
            + self._dropped_spill_full
            + self._dropped_spill_error
            + self._spill_unreadable()
        )

    def _spill_unreadable(self) -> int:
        return self._spill.unreadable_own if self._spill is not None else 0

    def _add_waiter(self, target: int, future: concurrent.futures.Future[bool]) -> None:
        if future.done():
            return
        self._waiters.append((target, self._drops_acknowledged, future))
        # A flush writes partial batches now and cuts a retry backoff short.
        if self._wakeup is not None and self._retry_now is not None:
            self._wakeup.set()
            self._retry_now.set()
        self._settle_waiters()

    def _settle_waiters(self) -> None:
        if not self._waiters:
            return
        position = self._completed_position()
        drops = self._lost_records()
        pending = []
        for target, drops_before, future in self._waiters:
            if future.done():
                continue
            if position >= target:
                self._drops_acknowledged = drops
                try:
                    future.set_result(drops == drops_before)
                except concurrent.futures.InvalidStateError:  # cancelled by a timed-out caller
                    pass
            else:
                pending.append((target, drops_before, future))
        self._waiters = pending

    def _request_flush(self) -> concurrent.futures.Future[bool] | bool:
        """Register a flush; returns the result directly when there is nothing to wait for."""
        if not self._started:
            return True
        target = self._enqueued.value()
        runtime = self._runtime
        if runtime is None or self._closed_and_stopped() or threading.get_ident() == runtime.thread_id:
            # On the runtime thread a wait would deadlock the consumer it waits for.
            return self._completed_position() >= target
        future: concurrent.futures.Future[bool] = concurrent.futures.Future()
        try:
            runtime.call_soon(self._add_waiter, target, future)
        except RuntimeError:
            return False
        return future

    def _closed_and_stopped(self) -> bool:
        return self._closed and (self._task is None or self._task.done())

    def _flush_deadline(self, timeout: float | None) -> float:
        now = time.monotonic()
        if timeout is not None:
            return now + max(0.0, timeout)
        return self._budget_deadline(now)

    def _budget_deadline(self, now: float) -> float:
        """The deadline shared by ``flush(None)`` and ``close()``.

        ``logging.shutdown`` calls flush() then close(): while Redis is down the
        two together must not take more than close_timeout, so a close that
        follows a timed-out flush within close_timeout gets no fresh budget.
        """
        close_timeout = self._settings.close_timeout
        deadline = self._flush_budget_deadline
        if deadline is None or now > deadline + close_timeout:
            deadline = self._flush_budget_deadline = now + close_timeout
        return deadline

    def flush(self, timeout: float | None) -> bool:
        """Wait until every record enqueued before the call has been written; see RedisHandler.flush."""
        deadline = self._flush_deadline(timeout)
        future = self._request_flush()
        if isinstance(future, bool):
            return future
        try:
            done = future.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False
        if done and timeout is None:
            self._flush_budget_deadline = None
        return done

    async def aflush(self, timeout: float | None) -> bool:
        """The same as flush(), awaited on the caller's own event loop."""
        deadline = self._flush_deadline(timeout)
        future = self._request_flush()
        if isinstance(future, bool):
            return future
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                done = await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()
            return False
        if done and timeout is None:
            self._flush_budget_deadline = None
        return done

    # -------------------------------------------------------------- close

    def close(self) -> None:
        """Write what is buffered (bounded by close_timeout) and stop the consumer; idempotent."""
        self.begin_close(time.monotonic())()

    def begin_close(self, now: float) -> Callable[[], None]:
        """Start closing and return a function that waits for the close to finish.

        Split in two so the exit hook can close every handler at once.
        """
        with self._close_lock:
            if self._closed:
                return _noop
            self._closed = True
        with self._space:
            self._space.notify_all()  # callers blocked by overflow="block" give up now
        runtime = self._runtime
        if runtime is None:
            return _noop
        deadline = self._budget_deadline(now)
        try:
            future = runtime.submit(self._shutdown(deadline))
        except RuntimeError:  # the loop is already closed
            return _noop
        if threading.get_ident() == runtime.thread_id:
            return _noop  # closing from the loop itself: the shutdown runs once we return

        def finish() -> None:
            try:
                future.result(max(0.0, deadline - time.monotonic()) + _CLOSE_GRACE)
            except concurrent.futures.TimeoutError:
                report("close", f"closing the handler for {self._settings.key!r} did not finish in time")

        return finish

    async def _shutdown(self, deadline: float) -> None:
        self._closing = True
        self._close_deadline = deadline
        if self._wakeup is not None and self._retry_now is not None:
            self._wakeup.set()
            self._retry_now.set()
        task = self._task
        if task is not None and not task.done():
            _, pending = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                task.cancel()
                await asyncio.wait({task})
        trip, self._trip = self._trip, None
        if self._spill is not None and time.monotonic() >= self._spill_paused_until:
            # Not written in time: kept on disk for the next process instead of dropped.
            self._spill_out(trip.batches if trip is not None and not trip.from_spill else [])
        unsent = self._in_flight + len(self._buffer)
        self._in_flight = 0
        self._dequeued += len(self._buffer)
        self._buffer.clear()
        self._dropped_unsent += unsent
        if unsent:
            report(
                "unsent",
                f"{unsent} records for {self._settings.key!r} were not written before close_timeout "
                f"({self._settings.close_timeout:g}s) ran out; counted as dropped_closed",
                force=True,
            )
        self._settle_waiters()
        if self._spill is not None:
            left = self._spill.pending_own
            if left:
                report(
                    "spill-left",
                    f"{left} records for {self._settings.key!r} stay in {self._settings.spill_dir!r}; "
                    "the next process that logs to this key with this spill_dir replays them",
                    force=True,
                )
            self._spill.close()
        if self._writer is not None:
            try:
                async with asyncio.timeout(_CLIENT_CLOSE_TIMEOUT):
                    await self._writer.close()
            except (Exception, TimeoutError):  # noqa: S110 - the handler is closed either way
                pass

    # -------------------------------------------------------------- stats

    def _oldest_buffered_age(self) -> float | None:
        """Seconds since the oldest record not yet written was logged (from its timestamp), or None."""
        trip = self._trip
        if trip is not None and trip.batches:
            oldest = trip.batches[0][0]
        else:
            try:
                oldest = self._buffer[0]
            except IndexError:
                return None
        return document_age(unframe(oldest))

    def stats(self) -> dict[str, Any]:
        """Return a snapshot of the counters and health (counters exact once the handler is quiet)."""
        accepted = self._accepted.value()
        enqueued = self._enqueued.value()
        buffered = len(self._buffer)
        in_flight = self._in_flight
        spill = self._spill
        dropped_overflow = self._rejected.value() + self._evicted(enqueued, buffered) + self._dropped_spill_full
        dropped_closed = self._dropped_after_close.value() + self._dropped_unsent
        dropped_error = (
            self._dropped_error + self._dropped_failed.value() + self._dropped_spill_error + self._spill_unreadable()
        )
        dropped_internal = self._dropped_internal.value()
        return {
            "accepted": accepted,
            "written": self._written,
            "buffered": buffered + in_flight + self._spilled_pending(),
            "dropped": dropped_overflow + dropped_closed + dropped_error + dropped_internal,
            "dropped_overflow": dropped_overflow,
            "dropped_closed": dropped_closed,
            "dropped_error": dropped_error,
            "dropped_internal": dropped_internal,
            "batches": self._batches,
            "retries": self._retries,
            "retries_unknown_outcome": self._retries_unknown_outcome,
            "errors": self._write_errors + self._handler_errors.value(),
            "last_error": self._last_error,
            "last_error_at": self._last_error_at,
            "connected": self._failing_since is None and self._writer is not None and self._writer.connected,
            "idempotent_writes": self._writer is not None and self._writer.idempotent,
            "oldest_buffered_age": self._oldest_buffered_age(),
            "spilled": spill.spilled if spill is not None else 0,
            "replayed": spill.replayed if spill is not None else 0,
            "recovered": spill.recovered if spill is not None else 0,
            "spill_bytes": spill.bytes if spill is not None else 0,
            "spill_corrupt": spill.corrupt if spill is not None else 0,
        }
