"""wait_replicas: a batch counts as written only once enough replicas acknowledged it, and is not sent twice."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from redis_log_handler import RedisHandler
from redis_log_handler._server import EmbeddedRedis

from .conftest import log_through, wait_until
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
