"""The shipper: one handler's parts in one process, wired together, and their lifecycle (start, flush, close).

The parts are the intake (memory buffer), the disk spill, the delivery of round
trips, the flush waiters, the ledger, and the drain task that runs on the
runtime loop (``drain``). Application threads reach the shipper through
``RedisHandler``: to wake or start the drain task, to flush, to close and to read
``stats()``. A forked child builds a new shipper and never touches the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from redis_log_handler._shared.diagnostics import describe, records, report, were
from redis_log_handler._shared.fork import current_pid
from redis_log_handler._shared.native import Reply, allocate_lock, get_ident

from .delivery import Delivery
from .drain import Drain
from .flush import Flushes
from .heartbeat import Heartbeat
from .intake import Intake
from .ledger import Ledger, Places, SpillCounts
from .reentry import inside
from .runtime import Runtime, get_runtime
from .settings import WriterSettings
from .sigterm import prepare_for_sigterm
from .spill.spill import Spill
from .trip import trip_sizes
from .uwsgi import ThreadsRefused, keep_for_a_worker

__all__ = ["Shipper"]

_CLOSE_GRACE = 0.5  # seconds a closing caller waits past the deadline for the loop to finish up
_HEARTBEAT_REMOVAL = 0.5  # at most this much of close_timeout goes to removing the heartbeat


def _noop() -> None:
    return None


class Shipper:
    """Ships one handler's records to Redis from the runtime loop (one per handler and process)."""

    def __init__(self, settings: WriterSettings, *, replay_now: bool = True) -> None:
        self._settings = settings
        self.pid = current_pid()  # the process this shipper belongs to
        self.ledger = Ledger()
        self.spill = (
            Spill(os.fspath(settings.spill_dir), settings.key, settings.mode, settings.spill_max_bytes)
            if settings.spill_dir is not None
            else None
        )
        trip_limit, trip_fill = trip_sizes(settings)
        self.intake = Intake(
            capacity=settings.buffer_size,
            trip_limit=trip_limit,
            trip_fill=trip_fill,
            overflow=settings.overflow,
            block_timeout=settings.block_timeout,
            ledger=self.ledger,
            disk=self.spill,
            wake=self._wake,
        )
        self._delivery = Delivery(settings, self.ledger)
        self._flushes = Flushes(settings.close_timeout)
        self.closed = False
        self._close_lock = allocate_lock()
        self._close: Callable[[], None] = _noop  # waits for the close under way
        self._losses_named = 0  # records not written that the last line on stderr named
        self._naming_lock = allocate_lock()
        self._start_lock = allocate_lock()
        self._runtime: Runtime | None = None
        # Made on the runtime loop when the shipper starts.
        self._drain: Drain | None = None
        self._task: asyncio.Task[None] | None = None
        self._heartbeat = Heartbeat(settings, self.stats) if settings.heartbeat is not None else None
        self._beats: asyncio.Task[None] | None = None
        if replay_now and self.spill is not None and self.spill.has_segments_on_disk():
            self._start()  # replay what an earlier process left, even if this one never logs

    @property
    def started(self) -> bool:
        """Whether the runtime was asked to run this shipper's drain task."""
        return self._runtime is not None

    def adopt(self, parent: Shipper) -> None:
        """Take over the records *parent* (uWSGI's master, which never started a thread) still buffers."""
        frames = parent.intake.take_all()
        by_source = {source: counter.value() for source, counter in parent.ledger.accepted.items()}
        if sum(by_source.values()) != len(frames):  # the master dropped some: they stay its own to count
            by_source = {"stdlib": len(frames)}
        for source, count in by_source.items():
            for _ in range(count):
                self.ledger.accepted[source].increment()
        for framed in frames:
            self.intake.put(framed)

    def inherited(self) -> list[object]:
        """What a forked child must keep alive and never touch: the parent's client, task and events."""
        if self.spill is not None:
            self.spill.forget_inherited()
        drain = self._drain.inherited() if self._drain is not None else []
        return [self._delivery.inherited(), self._task, self._beats, *drain]

    # ------------------------------------------------------------ startup

    def _wake(self) -> None:
        """Called by the intake: a record arrived for an idle drain task, or a batch is ready. Never raises."""
        runtime = self._runtime
        if runtime is None:
            try:
                self._start()
            except ThreadsRefused as exc:  # uWSGI's master: a worker writes them
                keep_for_a_worker()
                report("uwsgi-master", str(exc))
                return
            except Exception as exc:  # too late in interpreter shutdown to start a thread, say
                report("runtime", f"cannot start the background thread: {describe(exc)}; records stay buffered")
                return
            runtime = self._runtime
        if runtime is not None:
            try:
                runtime.call_soon(self._on_wake)
            except RuntimeError:  # the loop is closed: interpreter exit is under way
                pass

    def _on_wake(self) -> None:
        if self._drain is not None:
            self._drain.wake()

    def _start(self) -> None:
        prepare_for_sigterm(first_record=True)
        # Outside the lock: starting the runtime logs ("Using selector"), on this thread; those records are
        # the handler's own doing (see reentry). The thread may be the runtime's own, flagged for good.
        already_inside = inside.active
        inside.active = True
        try:
            runtime = get_runtime()
        finally:
            inside.active = already_inside
        with self._start_lock:
            if self._runtime is None:
                runtime.call_soon(self._launch)
                self._runtime = runtime

    def _launch(self) -> None:
        self._drain = Drain(
            self._settings,
            ledger=self.ledger,
            intake=self.intake,
            spill=self.spill,
            delivery=self._delivery,
            flushes=self._flushes,
        )
        self._task = asyncio.get_running_loop().create_task(self._drain.run())
        self._task.add_done_callback(self._drain_finished)
        if self._heartbeat is not None:
            self._beats = asyncio.get_running_loop().create_task(self._heartbeat.run(self._delivery.transport()))

    def _drain_finished(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            report("drain", f"the drain task for {self._settings.key!r} stopped: {describe(error)}", force=True)

    # -------------------------------------------------------------- flush

    def _add_flush(self, position: int, reply: Reply[bool]) -> None:
        self._flushes.add(position, reply)
        if self._drain is not None:
            self._drain.hurry()  # partial batches are written now, a retry backoff is cut short
            self._drain.settle_flushes()

    def _request_flush(self) -> Reply[bool] | bool:
        """Register a flush; returns the result directly when there is nothing to wait for."""
        runtime = self._runtime
        if runtime is None:
            return not self.intake  # never started: nothing was sent (uWSGI's master leaves its records to a worker)
        position = self.ledger.appended.value()
        if self._closed_and_stopped() or get_ident() == runtime.thread_id:
            # On the runtime thread a wait would deadlock the drain task it waits for.
            return self._places_and_completed()[2] >= position
        reply: Reply[bool] = Reply()
        try:
            runtime.call_soon(self._add_flush, position, reply)
        except RuntimeError:
            return False
        return reply

    def _closed_and_stopped(self) -> bool:
        return self.closed and (self._task is None or self._task.done())

    def flush(self, timeout: float | None) -> bool:
        """Wait until every record appended before the call has been written; see RedisHandler.flush."""
        return self._flushes.flush(timeout, self._request_flush)

    async def aflush(self, timeout: float | None) -> bool:
        """The same as flush(), awaited on the caller's own event loop."""
        return await self._flushes.aflush(timeout, self._request_flush)

    # -------------------------------------------------------------- close

    def begin_close(self, now: float, timeout: float | None = None) -> Callable[[], None]:
        """Start closing, or join the close under way; returns a function that waits for it to finish.

        The exit hook closes many handlers at once. A second caller (the exit hook after a ``close()``
        that was interrupted, a SIGTERM that came during the exit hook) waits for the same close instead
        of returning at once: the process must not end before what the close writes, keeps on disk or
        counts is done. Once it is, the losses are named on stderr (again if there are more: records logged
        after the close). The close ends *timeout* seconds from *now*, or ``close_timeout`` (see
        ``Flushes.budget``).
        """
        with self._close_lock:
            if not self.closed:
                self.closed = True
                deadline = self._flushes.budget(now) if timeout is None else now + max(0.0, timeout)
                self._close = self._start_closing(deadline)
        close = self._close

        def finish() -> None:
            try:
                close()
            except Exception:
                self._name_losses()
                raise
            # Not in a finally: a close interrupted by a SystemExit goes on, and the next caller names the losses.
            self._name_losses()

        return finish

    def _start_closing(self, deadline: float) -> Callable[[], None]:
        self.intake.close()  # callers blocked by overflow="block" give up now
        runtime = self._runtime
        if runtime is None:  # never started (or could not start): nothing can be sent
            self.intake.move_all_to_disk()
            self.ledger.unsent += len(self.intake.take_all())
            return _noop
        try:
            reply = runtime.submit(self._shutdown(deadline))
        except RuntimeError:  # the loop is already closed
            return _noop
        if get_ident() == runtime.thread_id:
            return _noop  # closing from the loop itself: the shutdown runs once we return

        def finish() -> None:
            if not reply.wait(max(0.0, deadline - time.monotonic()) + _CLOSE_GRACE):
                report("close", f"closing the handler for {self._settings.key!r} did not finish in time")
            elif reply.value is not None:
                raise reply.value

        return finish

    def refuse_after_close(self) -> None:
        """Count a record logged after the close as dropped, and say so (at most once a report interval)."""
        self.ledger.after_close.increment()
        report(
            "after-close",
            f"a record logged to {self._settings.key!r} after its handler was closed is dropped (dropped_closed); "
            "if a logging.config.dictConfig call closed it (a full one closes every handler made before it, and "
            "uvicorn.run applies its log_config that way), give the handler to that configuration instead",
        )

    def _name_losses(self) -> None:
        """Name on stderr the records this handler accepted in this process and did not write, if more than before.

        The line counts from the start: the last one a process writes holds its whole loss. Threads that close
        at once (the exit hook, a SIGTERM's watcher) take turns: one that finds the loss named returns only once
        the line is out, so that it cannot end the process while another still writes it.
        """
        with self._naming_lock:
            self._write_losses()

    def _write_losses(self) -> None:
        _, places, _ = self._places_and_completed()
        stats = self.stats()
        dropped = stats["dropped"] - stats["dropped_internal"]  # the handler's own records are not the application's
        unsettled = places.memory + places.in_flight  # the close gave up on them: they end with the process
        if dropped + unsettled <= self._losses_named:
            return
        self._losses_named = dropped + unsettled
        parts = [f"{stats['written']} {were(stats['written'])} written"]
        if places.on_disk:
            parts.append(f"{places.on_disk} {'is' if places.on_disk == 1 else 'are'} kept on disk for the next process")
        if unsettled:
            parts.append(f"{unsettled} {were(unsettled)} still buffered when the close gave up")
        if dropped:
            reasons = ", ".join(
                f"{reason} {stats[reason]}"
                for reason in ("dropped_overflow", "dropped_closed", "dropped_error")
                if stats[reason]
            )
            parts.append(f"{dropped} {were(dropped)} dropped ({reasons})")
        report(
            "losses",
            f"closed: of {records(stats['accepted'] - stats['dropped_internal'])} logged to {self._settings.key!r} "
            f"in this process, {', '.join(parts[:-1])}{' and ' if len(parts) > 1 else ''}{parts[-1]}",
            force=True,
        )

    async def _shutdown(self, deadline: float) -> None:
        if self._beats is not None and self._heartbeat is not None:
            self._beats.cancel()
            remaining = min(_HEARTBEAT_REMOVAL, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._heartbeat.remove(self._delivery.transport()), remaining)
        if self._drain is not None:
            await self._drain.close(deadline, self._task)

    # -------------------------------------------------------------- stats

    def _places_and_completed(self) -> tuple[int, Places, int]:
        """Records appended so far, where those not yet written or dropped are, and how many have left."""
        drain = self._drain
        if drain is not None:
            appended, places = drain.places()
            return appended, places, drain.completed(appended, places)[0]
        appended, memory, on_disk = self.intake.places()
        places = Places(memory, 0, on_disk)
        return appended, places, places.completed(appended)

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters and health (counters exact once the handler is quiet)."""
        appended, places, _ = self._places_and_completed()
        drain = self._drain
        oldest_age = drain.oldest_buffered_age() if drain is not None else None
        health = {**self._delivery.health(), "oldest_buffered_age": oldest_age}
        spill = self.spill.counts() if self.spill is not None else SpillCounts()
        return self.ledger.stats(appended, places, spill, health)
