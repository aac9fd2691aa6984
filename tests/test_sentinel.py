"""Sentinel: through a failover (asked for, or a killed master) every accepted record reaches the new master."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler._cli.main import main

from .helpers import LOGGED_DURING_FAILOVER, log_through_change, wait_until
from .readers import collecting, documents, new_logger_name, running, wait_for_numbers, write_stream
from .topologies import Sentinels, node_client

pytestmark = pytest.mark.slow


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    """One master, two replicas, three sentinels."""
    started = Sentinels(replicas=2, sentinels=3).start()
    yield started
    started.stop()


def master_messages(sentinels: Sentinels, key: str) -> Counter[str]:
    """The messages in stream *key* on the master the sentinels name now."""
    master = node_client(sentinels.server_on(sentinels.master_port()))
    return Counter(json.loads(fields["data"])["message"] for _, fields in master.xrange(key))


@pytest.mark.parametrize(
    ("how", "wait_replicas"),
    [
        ("SIGKILL of the master", 1),
        # A forced failover leaves the old master running: until the sentinels reconfigure it, it takes
        # writes, and a replica not yet moved to the new master acknowledges them, then drops them when
        # it moves. The handler sends its last writes again to the promoted replica (see _failover).
        ("SENTINEL FAILOVER", 1),
        ("SENTINEL FAILOVER", 2),
    ],
)
def test_failover_keeps_every_accepted_record(
    sentinels: Sentinels, logger: logging.Logger, how: str, wait_replicas: int
) -> None:
    """Callers never wait, nothing is dropped, and the promoted master holds every record at least once."""
    key = "failover"
    handler = RedisHandler(url=sentinels.url, key=key, wait_replicas=wait_replicas)
    logger.addHandler(handler)
    old_port = sentinels.master_port()

    def fail_over() -> None:
        if how == "SENTINEL FAILOVER":
            sentinels.failover()
        else:
            sentinels.server_on(old_port).kill()

    messages, logged_during = log_through_change(
        logger, handler, fail_over, lambda: sentinels.master_port() != old_port
    )
    assert min(logged_during) >= LOGGED_DURING_FAILOVER, logged_during  # callers went on logging throughout
    old_master = sentinels.server_on(old_port)
    if old_master.ping():  # a forced failover: wait until the sentinels have demoted the old master
        wait_until(lambda: node_client(old_master).info("replication")["role"] == "slave", timeout=60)
    # The application keeps logging: its next write finds the new master (and sends the last writes again).
    logger.info("after the failover")
    messages.append("after the failover")
    assert handler.flush(60)
    stats = handler.stats()
    arrived = master_messages(sentinels, key)
    assert set(arrived) == set(messages)
    assert arrived.total() - len(messages) <= stats["retries_unknown_outcome"]  # duplicates are counted
    assert stats["written"] == stats["accepted"] == len(messages)
    assert stats["dropped"] == 0
    handler.close()


def test_commands_and_the_consumer_reach_the_master_through_sentinel(
    sentinels: Sentinels, capsys: pytest.CaptureFixture[str]
) -> None:
    """tail and RedisLogConsumer take the Sentinel URL and read from the master the sentinels name."""
    key, name = "through-sentinel", new_logger_name()
    write_stream(node_client(sentinels.master), key, documents(20, name))
    assert main(["tail", "--url", sentinels.url, "--key", key, "-n", "3"]) == 0
    assert [line.rsplit("=", 1)[1] for line in capsys.readouterr().out.splitlines()] == ["17", "18", "19"]
    consumer = RedisLogConsumer(url=sentinels.url, key=key, block=0.1)
    with collecting(name) as collector, running(consumer):
        wait_for_numbers(collector, 20)
    assert sorted(collector.numbers) == list(range(20))
