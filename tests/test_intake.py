"""The writer's policies on their own, without a runtime or a server: overflow, disk, back-pressure, retries, trips."""

from __future__ import annotations

import math
import os
import random
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable

import pytest

from redis_log_handler._shared.retry import BACKOFF_BASE, BACKOFF_CAP, retry_delay
from redis_log_handler._writer import backpressure as _backpressure
from redis_log_handler._writer import intake as _intake
from redis_log_handler._writer.delivery import spill_due
from redis_log_handler._writer.intake import Intake
from redis_log_handler._writer.ledger import Ledger, Places, SpillCounts
from redis_log_handler._writer.settings import WriterSettings
from redis_log_handler._writer.transport import batch_writer as _batch_writer
from redis_log_handler._writer.transport.batch_writer import BatchWriter
from redis_log_handler._writer.transport.writer_socket import WriterSocket, ready_now
from redis_log_handler._writer.trip import Trip

from .helpers import connection_over, wait_until


class FakeDisk:
    """A disk tail in a list, with room for *room* records."""

    def __init__(self, room: int = 1_000_000) -> None:
        self.records: list[bytes] = []
        self.room = room

    def store(self, frames: list[bytes]) -> int:
        """Take what fits, in order."""
        taken = frames[: max(0, self.room - len(self.records))]
        self.records.extend(taken)
        return len(taken)

    def has_records(self) -> bool:
        """Whether anything is on the fake disk."""
        return bool(self.records)

    def pending(self) -> int:
        """Records on the fake disk."""
        return len(self.records)


def make_intake(
    overflow: str = "drop_oldest",
    disk: FakeDisk | None = None,
    capacity: int = 4,
    block_timeout: float = 0.0,
    trip_limit: int | None = None,
) -> tuple[Intake, Ledger, list[int]]:
    """An intake with a fresh ledger (a round trip carries the whole buffer unless told); the list counts the wakes."""
    ledger = Ledger()
    wakes: list[int] = []
    intake = Intake(
        capacity=capacity,
        trip_limit=capacity if trip_limit is None else trip_limit,
        trip_fill=2,
        overflow=overflow,
        block_timeout=block_timeout,
        ledger=ledger,
        disk=disk,
        wake=lambda: wakes.append(1),
    )
    return intake, ledger, wakes


def put_numbers(intake: Intake, count: int, start: int = 0) -> None:
    """Put the records b"0", b"1", ... into *intake*."""
    for number in range(start, start + count):
        intake.put(b"%d" % number)


def drain(intake: Intake, disk: FakeDisk | None = None) -> list[bytes]:
    """Everything in the order the drain task sends it: the disk first, then memory."""
    replayed = list(disk.records) if disk is not None else []
    if disk is not None:
        disk.records.clear()
    return replayed + intake.take(1_000_000)


class TestOverflowWithoutDisk:
    def test_drop_oldest_keeps_the_newest_and_counts_evictions(self) -> None:
        """drop_oldest holds exactly capacity records, the newest; evictions are derived exactly."""
        intake, ledger, _ = make_intake("drop_oldest")
        put_numbers(intake, 10)
        assert ledger.evicted(ledger.appended.value(), len(intake)) == 6
        assert drain(intake) == [b"6", b"7", b"8", b"9"]
        assert ledger.evicted(ledger.appended.value(), len(intake)) == 6

    def test_drop_newest_keeps_the_oldest_and_counts_refusals(self) -> None:
        """drop_newest refuses what comes once full."""
        intake, ledger, _ = make_intake("drop_newest")
        put_numbers(intake, 10)
        assert ledger.rejected.value() == 6
        assert drain(intake) == [b"0", b"1", b"2", b"3"]

    def test_block_gives_up_after_block_timeout(self) -> None:
        """block with no room and a zero timeout refuses at once."""
        intake, ledger, _ = make_intake("block")
        put_numbers(intake, 5)
        assert ledger.rejected.value() == 1

    def test_block_resumes_when_the_drain_task_takes(self) -> None:
        """A caller blocked on a full buffer goes on as soon as the drain task takes records."""
        intake, ledger, _ = make_intake("block", block_timeout=30.0)
        put_numbers(intake, 4)
        caller = threading.Thread(target=put_numbers, args=(intake, 1, 4))
        caller.start()
        taken = drain(intake)
        caller.join(30)
        assert not caller.is_alive()
        assert taken + drain(intake) == [b"0", b"1", b"2", b"3", b"4"]
        assert ledger.rejected.value() == 0

    def test_close_releases_blocked_callers(self) -> None:
        """close() makes a blocked caller give up (its record is refused) instead of waiting out block_timeout."""
        intake, ledger, _ = make_intake("block", block_timeout=30.0)
        put_numbers(intake, 4)
        caller = threading.Thread(target=put_numbers, args=(intake, 1, 4))
        caller.start()
        intake.close()
        caller.join(30)
        assert not caller.is_alive()
        assert ledger.rejected.value() == 1


class TestMovingToDisk:
    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest", "block"])
    def test_full_memory_moves_the_oldest_to_disk(self, overflow: str) -> None:
        """With a disk nothing is dropped whatever the policy: the oldest go to disk, in order."""
        disk = FakeDisk()
        intake, ledger, _ = make_intake(overflow, disk)
        put_numbers(intake, 100)
        assert ledger.rejected.value() == ledger.evicted(ledger.appended.value(), len(intake)) == 0
        assert len(intake) <= 4
        moved = len(disk.records)
        assert drain(intake, disk) == [b"%d" % number for number in range(100)]
        assert ledger.moved == moved

    def test_memory_waits_while_the_disk_holds_older_records(self) -> None:
        """take() gives nothing while the disk is not empty: disk first, then memory."""
        disk = FakeDisk()
        intake, _, _ = make_intake("drop_oldest", disk)
        put_numbers(intake, 10)
        assert disk.records
        assert intake.take(100) == []
        disk.records.clear()
        assert intake.take(100) != []

    @pytest.mark.parametrize(("overflow", "kept"), [("drop_oldest", [8, 9, 10, 11]), ("drop_newest", [2, 3, 4, 5])])
    def test_full_disk_falls_back_to_the_policy(self, overflow: str, kept: list[int]) -> None:
        """Once the disk is full the policy applies, counted exactly; the disk keeps the oldest."""
        disk = FakeDisk(room=2)
        intake, ledger, _ = make_intake(overflow, disk)
        put_numbers(intake, 12)
        assert drain(intake, disk) == [b"0", b"1"] + [b"%d" % number for number in kept]
        dropped = ledger.rejected.value() + ledger.evicted(ledger.appended.value(), len(intake))
        assert dropped == 12 - 2 - 4

    def test_what_the_disk_refuses_goes_back_in_order(self) -> None:
        """move_all_to_disk keeps in memory, at the head and in order, what the disk did not take."""
        disk = FakeDisk(room=3)
        intake, ledger, _ = make_intake("drop_oldest", disk, capacity=100)
        put_numbers(intake, 10)
        assert intake.move_all_to_disk() == 3
        assert drain(intake, disk) == [b"%d" % number for number in range(10)]
        assert ledger.moved == 3

    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest", "block"])
    def test_while_a_move_is_under_way_the_buffer_stays_full_to_logging_threads(self, overflow: str) -> None:
        """A logging thread that looks while another moves a chunk to disk (logging threads append without the
        intake's lock) finds the buffer full, so a disk that refuses the chunk cannot push memory past its
        capacity when the chunk goes back (under load, 4 threads overshot a 1,000-record buffer by 144)."""
        disk = FakeDisk(room=0)
        intake, _, _ = make_intake(overflow, disk, capacity=100)
        seen_by_others: list[bool] = []
        refuse = disk.store

        def store(frames: list[bytes]) -> int:
            seen_by_others.append(len(intake) >= intake.capacity)  # what put() reads at this instant
            return refuse(frames)

        disk.store = store  # type: ignore[method-assign]
        put_numbers(intake, 101)
        assert seen_by_others == [True]
        assert len(intake) == 100
        assert intake.capacity == 100


class TestWakeHints:
    def test_first_record_and_each_full_round_trip_wake_the_drain_task(self) -> None:
        """An idle drain task is woken by the first record, then only by the record that fills a round trip."""
        intake, _, wakes = make_intake(capacity=100)
        put_numbers(intake, 1)
        assert len(wakes) == 1
        put_numbers(intake, 5, start=1)
        assert len(wakes) == 2  # the second filled a round trip of two; no more until the drain task waits again
        intake.fill_wake_done()
        put_numbers(intake, 1, start=6)
        assert len(wakes) == 3

    def test_an_idle_drain_task_does_not_sleep_on_records(self) -> None:
        """set_idle() says not to sleep when records are waiting, and the next record wakes an idle drain task."""
        intake, _, wakes = make_intake(capacity=100)
        put_numbers(intake, 1)
        assert intake.set_idle() is False
        drain(intake)
        assert intake.set_idle() is True
        put_numbers(intake, 1)
        assert len(wakes) == 2


class TestRetryPolicy:
    @pytest.mark.parametrize("failures", [1, 2, 5, 10, 50, 1_100, 10**6])
    def test_backoff_is_capped_exponential_with_full_jitter(
        self, failures: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The delay is uniform between 0 and min(cap, base * 2**failures), however long the outage has lasted
        (past 1,023 failures in a row ``2.0**failures`` overflows: the drain task must not end there)."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(failures, 64))
        monkeypatch.setattr(random, "uniform", lambda low, high: high)
        assert retry_delay(failures) == ceiling
        monkeypatch.setattr(random, "uniform", lambda low, high: low)
        assert retry_delay(failures) == 0.0
        monkeypatch.undo()
        assert 0.0 <= retry_delay(failures) <= ceiling

    def test_spill_is_due_after_spill_after_seconds_of_failure(self) -> None:
        """Only a failure that has lasted spill_after seconds sends records to disk."""
        assert not spill_due(None, 100.0, 5.0)
        assert not spill_due(96.0, 100.0, 5.0)
        assert spill_due(95.0, 100.0, 5.0)
        assert spill_due(100.0, 100.0, 0.0)


class TestTrip:
    def test_out_of_order_settling_keeps_the_flush_position_back(self) -> None:
        """A later batch written before an earlier one is no longer buffered, but flushes still wait for the earlier."""
        trip = Trip.of([b"%d" % number for number in range(10)], batch_size=4)
        assert [len(batch) for batch in trip.batches] == [4, 4, 2]
        trip.open[1] = False  # the middle batch was written, the first is being retried
        assert trip.unsettled() == 6
        assert trip.from_oldest_unsettled() == 10
        assert trip.to_send() == [trip.batches[0], trip.batches[2]]
        trip.open[0] = False
        assert (trip.unsettled(), trip.from_oldest_unsettled(), trip.oldest()) == (2, 2, b"8")
        trip.open[2] = False
        assert trip.settled


class TestLedger:
    @pytest.mark.parametrize("scenario", ["quiet", "busy"])
    def test_stats_balance(self, scenario: str) -> None:
        """stats() adds up: accepted == written + dropped + buffered, each drop under its own reason."""
        ledger = Ledger()
        increments: dict[str, Callable[[], int]] = {"stdlib": ledger.accepted["stdlib"].increment}
        for _ in range(20):
            increments["stdlib"]()
        for _ in range(15):
            ledger.appended.increment()
        for _ in range(2):
            ledger.rejected.increment()
        for _ in range(3):
            ledger.internal.increment()
        ledger.taken, ledger.written = 10, 7 if scenario == "busy" else 10
        in_flight = 3 if scenario == "busy" else 0
        stats = ledger.stats(15, Places(memory=5, in_flight=in_flight, on_disk=0), SpillCounts(), {})
        assert stats["accepted"] == stats["written"] + stats["dropped"] + stats["buffered"] == 20
        # 2 rejected, nothing evicted (15 appended = 10 taken + 5 in memory), 3 internal
        reasons = ("dropped_overflow", "dropped_closed", "dropped_error", "dropped_internal")
        assert tuple(stats[reason] for reason in reasons) == (2, 0, 0, 3)


class TestSteppingAside:
    def test_a_thread_waits_for_the_writers_turn(self) -> None:
        """step_aside asks whether it is still needed and, if so, waits until the writer's loop is about to sleep."""
        asked = threading.Event()

        def still_needed() -> bool:
            asked.set()
            return True

        waiter = threading.Thread(target=_backpressure.step_aside, args=(still_needed, 30.0), daemon=True)
        waiter.start()
        try:
            assert asked.wait(10)
            # The loop is about to block in its selector: whoever stepped aside goes on (notified under the
            # condition's lock, so a waiter that was asked is waiting by then, or is woken by a later call).
            finished = lambda: _backpressure.writer_sleeps(-1, 0.0) or not waiter.is_alive()  # noqa: E731
            wait_until(finished, timeout=10)
        finally:
            _backpressure.loop_woke()

    def test_only_past_the_high_water_mark_and_only_if_the_writer_could_run(self) -> None:
        """A logging thread steps aside only with a backlog past half the buffer and a writer that is not waiting."""
        intake, _, _ = make_intake(capacity=10)
        put_numbers(intake, 4)
        assert intake._writer_behind() is False  # below the high-water mark (5)
        put_numbers(intake, 2, start=4)
        assert intake._writer_behind() is True  # the writer could run (writer_waits is None)
        intake.writer_waits = lambda: False  # waiting on Redis: a reply that has not come
        assert intake._writer_behind() is False
        intake.writer_waits = lambda: True  # the reply is there
        assert intake._writer_behind() is True

    def test_the_high_water_mark_is_one_round_trip_at_most_half_the_buffer(self) -> None:
        """Past what one round trip carries the writer is behind, however large the buffer."""
        intake, _, _ = make_intake(capacity=100, trip_limit=16)
        put_numbers(intake, 15)
        assert intake._writer_behind() is False
        put_numbers(intake, 1, start=15)
        assert intake._writer_behind() is True  # 16: one round trip's records, well below half the buffer

    def test_put_steps_aside_past_the_high_water_mark(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """put() hands the decision to step_aside once the backlog passes the high-water mark, not before."""
        calls: list[bool] = []
        monkeypatch.setattr(_intake, "step_aside", lambda needed, timeout: calls.append(needed()))
        intake, _, _ = make_intake(capacity=10)
        put_numbers(intake, 4)
        assert calls == []
        put_numbers(intake, 3, start=4)
        assert calls == [True, True, True]


class TestWriterReadiness:
    def test_can_resume_follows_what_the_write_waits_for(self) -> None:
        """Connecting with a loop that could run, a reply that has come, room to send: the writer could run."""
        settings = WriterSettings.build(url="redis://127.0.0.1:1/0")
        loop_could_run = [True]
        writer = BatchWriter(None, settings, settings.key, loop_could_run=lambda: loop_could_run[0])
        ours, server = socket.socketpair()
        try:
            writer._socket = WriterSocket(connection_over(ours))
            assert writer.can_resume() is True  # waiting for nothing
            writer._waiting = _batch_writer._CONNECTING
            assert writer.can_resume() is True
            loop_could_run[0] = False
            assert writer.can_resume() is False  # connecting, and the loop waits with nothing come yet
            writer._waiting = _batch_writer._AWAITING_REPLY
            assert writer.can_resume() is False
            server.send(b":1000\r\n")
            assert writer.can_resume() is True
            writer._waiting = _batch_writer._SENDING
            assert writer.can_resume() is True  # room in the socket's send buffer
            writer._socket = WriterSocket(object())
            assert writer.can_resume() is False  # no socket to look at: assume a wait on Redis
        finally:
            ours.close()
            server.close()


class TestLoopCouldRun:
    """Whether the runtime loop could run, as logging threads see it from its selector."""

    def test_a_loop_that_is_not_blocked_could_run(self) -> None:
        """Outside its selector (running, or preempted) the loop could run."""
        assert _backpressure._could_run(None) is True

    def test_blocked_until_an_event_comes_even_before_the_loop_notices(self) -> None:
        """Blocked with nothing ready: no; once an event waits on the selector (unhandled yet): yes."""
        selector = selectors.DefaultSelector()
        ours, theirs = socket.socketpair()
        try:
            selector.register(ours, selectors.EVENT_READ)
            blocked = (selector.fileno(), math.inf)
            assert _backpressure._could_run(blocked) is False
            theirs.send(b"+OK\r\n")  # a reply arrives; nobody has called select() since
            assert _backpressure._could_run(blocked) is True
            ours.recv(16)
            assert _backpressure._could_run(blocked) is False  # handled: blocked again
        finally:
            selector.close()
            ours.close()
            theirs.close()

    def test_blocked_until_its_timeout_is_over(self) -> None:
        """A timer that is due (the selector's timeout over) lets the loop run."""
        selector = selectors.DefaultSelector()
        try:
            assert _backpressure._could_run((selector.fileno(), time.monotonic() + 60)) is False
            assert _backpressure._could_run((selector.fileno(), time.monotonic() - 0.001)) is True
        finally:
            selector.close()

    def test_without_a_descriptor_to_poll_assume_a_wait(self) -> None:
        """A selector without a pollable descriptor (select, poll): a blocked loop counts as waiting on Redis."""
        assert _backpressure._could_run((-1, math.inf)) is False

    def test_descriptors_past_1024_are_polled(self) -> None:
        """A busy process's descriptors past select()'s limit of 1024 still tell whether an event has come."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft <= 1500:
            if hard != resource.RLIM_INFINITY and hard <= 1500:
                pytest.skip(f"the descriptor limit ({hard}) is below 1500")
            resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
        ours, theirs = socket.socketpair()
        high = os.dup2(ours.fileno(), 1500)
        try:
            assert ready_now(high) is False
            assert ready_now(high, writable=True) is True
            theirs.send(b":1\r\n")
            assert ready_now(high) is True
        finally:
            os.close(high)
            ours.close()
            theirs.close()
        assert ready_now(high) is False  # closed: nothing will come
