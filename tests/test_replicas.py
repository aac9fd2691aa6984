"""wait_replicas: a batch counts as written only once enough replicas acknowledged it, and is not sent twice."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from redis_log_handler import RedisHandler
from redis_log_handler._writer.replicas import RecentWrites
from redis_log_handler._writer.transport.info import replication_history
from redis_log_handler.testing import EmbeddedRedis

from .helpers import log_through, wait_until
from .topologies import node_client

pytestmark = pytest.mark.slow


@pytest.fixture
def master() -> Iterator[EmbeddedRedis]:
    """A master with no replica yet."""
    with EmbeddedRedis("--repl-diskless-sync-delay", "0") as server:
        yield server


def test_records_wait_for_a_replica_then_count_once(master: EmbeddedRedis, logger: logging.Logger) -> None:
    """With no replica, records are in the master but stay buffered and flush() is False; a replica settles them."""
    handler = RedisHandler(url=master.url, key="waits", wait_replicas=1)
    logger.addHandler(handler)
    log_through(handler, 3000)
    client = node_client(master)
    assert handler.flush(0.5) is False
    wait_until(lambda: handler.stats()["last_error"])  # a WAIT gave up after its timeout
    assert client.xlen("waits") > 0  # the master has records the handler does not count as written
    stats = handler.stats()
    assert stats["written"] == 0
    assert stats["buffered"] == 3000
    assert stats["last_error"].startswith("NotReplicated")
    with EmbeddedRedis("--replicaof", "127.0.0.1", str(master.port)):
        assert handler.flush(30)
        stats = handler.stats()
        assert stats["written"] == 3000
        assert stats["buffered"] == 0
        assert client.xlen("waits") == 3000  # waiting re-sent nothing
        assert stats["retries_unknown_outcome"] == 0
        handler.close()


def test_a_lost_connection_before_the_acknowledgement_sends_again(
    master: EmbeddedRedis, logger: logging.Logger
) -> None:
    """If the connection drops while replicas are awaited, the batches go out again (duplicates counted)."""
    handler = RedisHandler(url=master.url, key="again", wait_replicas=1)
    logger.addHandler(handler)
    log_through(handler, 1000)
    client = node_client(master)
    wait_until(lambda: handler.stats()["last_error"])  # a WAIT gave up: the master holds unacknowledged batches
    accepted = client.xlen("again")
    client.client_kill_filter(_type="normal", skipme=True)
    with EmbeddedRedis("--replicaof", "127.0.0.1", str(master.port)):
        assert handler.flush(30)
        stats = handler.stats()
        assert stats["written"] == 1000
        assert stats["retries_unknown_outcome"] >= accepted > 0  # the master had them; the handler could not know
        assert client.xlen("again") == 1000 + stats["retries_unknown_outcome"]
        messages = {json.loads(fields["data"])["message"] for _, fields in client.xrange("again")}
        assert messages == {str(number) for number in range(1000)}
        handler.close()


class TestRecentWrites:
    """The batches kept to send again after a failover (no server needed)."""

    def test_sent_again_only_to_a_replica_promoted_from_the_same_history(self) -> None:
        """The same master again, or an unrelated one (a slot that moved), gets nothing; a promoted replica all."""
        recent = RecentWrites(limit=10)
        assert recent.connected(("master-a", "")) == []
        recent.add([b"1", b"2"])
        assert recent.connected(("master-a", "")) == []  # a reconnection to the same master
        recent.add([b"3"])
        assert recent.connected(("replica-b", "master-a")) == [[b"1", b"2"], [b"3"]]
        recent.add([b"4"])
        assert recent.connected(("unrelated-c", "something-else")) == []
        recent.add([b"5"])
        assert recent.connected(("promoted-d", "unrelated-c")) == [[b"5"]]

    def test_keeps_whole_batches_covering_the_limit(self) -> None:
        """The oldest batches go once the newer ones hold the limit; the newest batch stays even if larger."""
        recent = RecentWrites(limit=3)
        recent.connected(("a", ""))
        for batch in ([b"1"], [b"2", b"3"], [b"4", b"5"]):
            recent.add(batch)
        assert recent.connected(("b", "a")) == [[b"2", b"3"], [b"4", b"5"]]
        recent.connected(("c", "b"))
        recent.add([b"6", b"7", b"8", b"9"])
        assert recent.connected(("d", "c")) == [[b"6", b"7", b"8", b"9"]]

    def test_replication_ids_from_info(self) -> None:
        """INFO replication's two ids, bytes or text."""
        info = b"# Replication\r\nrole:master\r\nmaster_replid:abc\r\nmaster_replid2:def\r\nmaster_repl_offset:5\r\n"
        assert replication_history(info) == ("abc", "def")
        assert replication_history(info.decode()) == ("abc", "def")


def test_close_without_enough_replicas_is_bounded_and_counts_the_records(master: EmbeddedRedis) -> None:
    """close() gives up after close_timeout; records no replica acknowledged count as dropped_closed."""
    handler = RedisHandler(url=master.url, key="closing", wait_replicas=1, close_timeout=0.5)
    log_through(handler, 500)
    wait_until(lambda: handler.stats()["last_error"])  # a WAIT gave up: the batch is in flight
    started = time.monotonic()
    handler.close()
    assert time.monotonic() - started < 5  # close_timeout, plus the WAIT in progress (at most 1 s)
    stats = handler.stats()
    assert stats["written"] == 0
    assert stats["dropped_closed"] == 500  # the master holds them, unreplicated: not counted as written
    assert stats["accepted"] == stats["written"] + stats["dropped"]
