"""The drain, delivery and flush logic on the in-memory transport: what each reply of the server makes of a batch.

No server runs: ``InMemoryTransport`` stands behind real handlers (their buffer, runtime loop, retries and
counters) and scripts the server's answers. What Redis would hold is what the transport kept, so each test
counts from outside the handler: records kept plus records counted as dropped (and named on stderr at a
close) equal records logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.exceptions

from redis_log_handler import RedisHandler
from redis_log_handler._shared.retry import BACKOFF_BASE, BACKOFF_CAP
from redis_log_handler._writer import drain as _drain
from redis_log_handler._writer.drain import HURRIED_RETRY
from redis_log_handler.testing import InMemoryTransport

from .helpers import wait_until
from .servers import named

KEY = "logs"
BATCH = 10

MakeHandler = Callable[..., RedisHandler]


@pytest.fixture
def memory() -> Iterator[InMemoryTransport]:
    """The stand-in server; stalls still pending when the test ends are released."""
    transport = InMemoryTransport()
    yield transport
    transport.release()


@pytest.fixture
def handler(
    memory: InMemoryTransport, make_handler: MakeHandler, logger: logging.Logger
) -> Callable[..., RedisHandler]:
    """A handler writing to *memory*, attached to the test's logger (batches of ``BATCH`` records)."""

    def make(**kwargs: Any) -> RedisHandler:
        made = make_handler(key=KEY, transport=memory, batch_size=BATCH, **kwargs)
        logger.addHandler(made)
        return made

    return make


def log(logger: logging.Logger, first: int, count: int) -> list[str]:
    """Log records numbered from *first*; their messages."""
    for number in range(first, first + count):
        logger.info("%d", number)
    return [str(number) for number in range(first, first + count)]


def stalled_on_one(memory: InMemoryTransport, logger: logging.Logger) -> list[str]:
    """Log one record and wait until its round trip stalls: what is logged next waits in the buffer."""
    memory.fail_next("stall")
    messages = log(logger, 0, 1)
    wait_until(lambda: memory.stalled == 1)
    return messages


class TestReplies:
    def test_a_refused_connection_is_retried_until_every_record_is_written_once(
        self, memory: InMemoryTransport, handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """Connections refused five times: the records wait and are written once each, in order, and the
        counters say what happened (retries, errors, nothing dropped)."""
        made = handler()
        memory.fail_next("unreachable", times=5)
        messages = log(logger, 0, 25)
        assert made.flush(10)
        assert memory.messages(KEY) == messages
        stats = made.stats()
        assert (stats["written"], stats["dropped"], stats["buffered"]) == (25, 0, 0)
        assert stats["retries"] >= 5
        assert stats["errors"] >= 5
        assert "ConnectionError" in stats["last_error"]

    def test_a_lost_reply_is_sent_again_and_counted_as_an_unknown_outcome(
        self, memory: InMemoryTransport, handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """The server wrote the batch and the reply was lost: the writer cannot know, sends it again, and counts
        the duplicates in ``retries_unknown_outcome``; ``written`` counts each record once."""
        made = handler()
        stalled_on_one(memory, logger)
        memory.fail_next("lost_reply")
        messages = ["0", *log(logger, 1, 25)]
        memory.release()
        assert made.flush(10)
        kept = memory.messages(KEY)
        assert sorted(set(kept), key=int) == messages
        duplicates = len(kept) - len(messages)
        assert duplicates == 25
        stats = made.stats()
        assert (stats["written"], stats["retries_unknown_outcome"]) == (26, duplicates)

    def test_one_batch_refused_for_good_costs_only_its_own_records_and_says_so(
        self,
        memory: InMemoryTransport,
        handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A round trip of four batches whose second gets ``WRONGTYPE``: the other three are written, the ten
        refused ones count as ``dropped_error`` with a line on stderr, and nothing is retried."""
        made = handler()
        stalled_on_one(memory, logger)
        memory.fail_next([None, redis.exceptions.ResponseError("WRONGTYPE Operation against a key")])
        messages = log(logger, 1, 4 * BATCH)
        memory.release()
        assert not made.flush(10)  # False: records were dropped
        refused = messages[BATCH : 2 * BATCH]
        assert memory.messages(KEY) == ["0", *[m for m in messages if m not in refused]]
        stats = made.stats()
        assert (stats["written"], stats["dropped_error"], stats["buffered"]) == (1 + 3 * BATCH, BATCH, 0)
        assert "WRONGTYPE" in capsys.readouterr().err

    @pytest.mark.parametrize(
        "reply",
        [
            redis.exceptions.MovedError("3999 127.0.0.1:6381"),
            redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'"),
            redis.exceptions.ResponseError("LOADING Redis is loading the dataset in memory"),
            redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        ],
        ids=["MOVED", "OOM", "LOADING", "READONLY"],
    )
    def test_a_transient_reply_is_retried_not_dropped(
        self, memory: InMemoryTransport, handler: MakeHandler, logger: logging.Logger, reply: Exception
    ) -> None:
        """A slot that moved, a full or loading server, a demoted master: the batch is written once it passes."""
        made = handler()
        memory.fail_next(reply, times=3)
        messages = log(logger, 0, 15)
        assert made.flush(10)
        assert memory.messages(KEY) == messages
        assert (made.stats()["written"], made.stats()["dropped"]) == (15, 0)

    def test_a_refused_trim_leaves_the_batch_written_and_is_said_once(
        self,
        memory: InMemoryTransport,
        handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A trim (``maxlen``) the server refuses does not cost the records: they are written, counted written,
        and one line on stderr says the key is not trimmed."""
        made = handler(maxlen=1000)
        memory.fail_next("refused_trim", times=2)
        messages = log(logger, 0, 15)
        assert made.flush(10)
        assert memory.messages(KEY) == messages
        assert (made.stats()["written"], made.stats()["dropped"]) == (15, 0)
        assert capsys.readouterr().err.count("refused to trim or expire") == 1


class TestScripting:
    @pytest.mark.parametrize(
        ("fault", "times", "parameter"), [("refused", 1, "fault"), (42, 1, "fault"), ("stall", 0, "times")]
    )
    def test_a_fault_it_does_not_know_is_refused_at_once(
        self, memory: InMemoryTransport, fault: Any, times: int, parameter: str
    ) -> None:
        """A misspelt fault or a count below one raises ``ValueError`` naming it, instead of scripting nothing."""
        with pytest.raises(ValueError, match=rf"^{parameter}\b"):
            memory.fail_next(fault, times=times)
        assert memory.writes == 0


class TestReplicas:
    def test_a_wait_shortfall_keeps_the_batch_in_flight_until_replicas_have_it(
        self, memory: InMemoryTransport, handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """``WAIT`` answers with too few replicas: the batch is not counted written (still ``buffered``, the
        flush waits) and is not sent again on the same connection; once ``WAIT`` is satisfied it is written."""
        made = handler(wait_replicas=1)
        stalled_on_one(memory, logger)
        memory.fail_next("not_replicated")
        memory.fail_next("stall")  # the next WAIT
        messages = ["0", *log(logger, 1, 25)]
        memory.release()
        wait_until(lambda: memory.stalled == 1)
        stats = made.stats()
        assert (stats["written"], stats["buffered"]) == (1, 25)
        assert memory.messages(KEY) == messages  # the master has them
        memory.release()
        assert made.flush(10)
        assert memory.messages(KEY) == messages  # once: a WAIT vouches for writes on its own connection
        assert made.stats()["written"] == 26


class TestDeadlines:
    def test_a_flush_hurries_the_retries_of_a_long_outage(
        self,
        memory: InMemoryTransport,
        handler: MakeHandler,
        logger: logging.Logger,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Twelve refused connections would back off for 36 s in all (the jitter pinned at its largest: up to
        5 s each); while a flush waits, each retry is at most ``HURRIED_RETRY`` away, so a flush with a deadline
        well past twelve of those writes every record."""
        monkeypatch.setattr(_drain, "retry_delay", lambda failures: min(BACKOFF_CAP, BACKOFF_BASE * 2**failures))
        made = handler()
        memory.fail_next("unreachable", times=12)
        messages = log(logger, 0, 5)
        assert made.flush(12 * HURRIED_RETRY + 3.0)
        assert memory.messages(KEY) == messages

    def test_a_stall_past_close_timeout_names_every_record_not_written(
        self,
        memory: InMemoryTransport,
        handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A server frozen past ``close_timeout``: the close gives up in time, counts the records as
        ``dropped_closed`` and names them on stderr, so that kept plus named equals logged."""
        made = handler(close_timeout=0.5)
        log(logger, 0, 1)
        assert made.flush(10)
        memory.fail_next("stall")
        log(logger, 1, 30)
        wait_until(lambda: memory.stalled == 1)
        made.close()
        err = capsys.readouterr().err
        [line] = named(err, KEY)
        assert len(memory.messages(KEY)) + line.not_written == 31
        assert (line.logged, line.written) == (31, 1)
        assert made.stats()["dropped_closed"] == 30

    def test_a_second_close_waits_for_the_one_under_way(
        self,
        memory: InMemoryTransport,
        handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Two threads close at once (the exit hook and a SIGTERM's): the second returns only once the first
        has named what it could not write, so neither can end the process before the line is out."""
        made = handler(close_timeout=1.0)
        memory.fail_next("stall")
        log(logger, 0, 20)
        wait_until(lambda: memory.stalled == 1)
        first = threading.Thread(target=made.close)
        first.start()
        wait_until(lambda: made._shipper.closed)
        made.close()
        named_when_second_returned = named(capsys.readouterr().err, KEY)
        first.join()
        assert [line.not_written for line in named_when_second_returned] == [20]
