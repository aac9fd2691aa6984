"""Redis Cluster: shards spread over the masters, a slot migration and a master failover lose nothing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from redis_log_handler import RedisHandler, RedisLogConsumer, shard_keys
from redis_log_handler._cli.main import main

from .helpers import LOGGED_DURING_FAILOVER, log_through_change
from .readers import collecting, documents, new_logger_name, running, wait_for_numbers, write_stream
from .topologies import Cluster, node_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Three masters, no replicas."""
    started = Cluster(masters=3).start()
    yield started
    started.stop()


def cluster_entries(cluster: Cluster, key: str) -> list[dict[str, Any]]:
    """Every document in stream *key*, read from the master serving its slot."""
    owner = node_client(cluster.owner(key_slot(key.encode())))
    return [json.loads(fields["data"]) for _, fields in owner.xrange(key)]


_CHILD = """
import logging, sys
from redis_log_handler import RedisHandler
logger = logging.getLogger("child")
logger.addHandler(RedisHandler(url=sys.argv[1], key=sys.argv[2], shards=3))
logger.setLevel(logging.INFO)
for index in range({records}):
    logger.info("%s", index)
"""


def test_shards_spread_over_the_masters(cluster: Cluster, tmp_path: Path) -> None:
    """Processes write to shards chosen from their producer ids; the three shards sit on three masters."""
    key, records = "spread", 2000
    keys = shard_keys(key, 3)
    assert len({cluster.owner(key_slot(shard.encode())).port for shard in keys}) == 3
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.masters[0].port, decode_responses=True)
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(records=records))
    children = 0
    # Each process picks a shard from its random producer id: start processes until each shard got one.
    while not all(client.xlen(shard) for shard in keys):
        assert children < 40, "40 processes never covered three shards"
        subprocess.run([sys.executable, str(script), cluster.url, key], check=True, timeout=60)
        children += 1
    documents = [document for shard in keys for document in cluster_entries(cluster, shard)]
    assert len(documents) == children * records
    assert len({document["id"] for document in documents}) == children * records
    for shard in keys:  # one process's records stay together, in order, on one shard
        by_process = Counter(document["process"] for document in cluster_entries(cluster, shard))
        assert set(by_process.values()) == {records}
    client.close()


def test_slot_migration_while_logging_loses_nothing(cluster: Cluster, logger: logging.Logger) -> None:
    """The key's slot moves to another master mid-stream; MOVED is followed and every record arrives once."""
    key = "migrating"
    slot = key_slot(key.encode())
    handler = RedisHandler(url=cluster.url, key=key)
    logger.addHandler(handler)
    target = next(master for master in cluster.masters if master is not cluster.owner(slot))
    messages, _ = log_through_change(logger, handler, lambda: cluster.migrate(slot, target), lambda: True)
    assert handler.flush(30)
    stats = handler.stats()
    assert cluster.owner(slot) is target
    entries = cluster_entries(cluster, key)
    assert Counter(entry["message"] for entry in entries) == Counter(messages)
    assert stats["written"] == stats["accepted"] == len(messages)
    assert stats["dropped"] == 0
    handler.close()


def test_master_failover_with_wait_replicas_keeps_every_record(tmp_path: Path, logger: logging.Logger) -> None:
    """The master of the key's slot is killed mid-stream; once a replica took over, every record is there."""
    replicated = Cluster(masters=3, replicas=2).start()
    try:
        key = "failover"
        slot = key_slot(key.encode())
        handler = RedisHandler(url=replicated.url, key=key, wait_replicas=1, spill_dir=tmp_path)
        logger.addHandler(handler)
        old_master = replicated.owner(slot)
        messages, logged_during = log_through_change(
            logger, handler, old_master.kill, lambda: replicated.owner(slot) is not old_master
        )
        assert min(logged_during) >= LOGGED_DURING_FAILOVER, logged_during  # callers went on logging throughout
        assert handler.flush(60)
        replicated.wait_ok()
        stats = handler.stats()
        entries = cluster_entries(replicated, key)
        assert set(Counter(entry["message"] for entry in entries)) == set(messages)  # at least once
        assert len(entries) - len(messages) <= stats["retries_unknown_outcome"]  # duplicates are counted
        assert stats["written"] == stats["accepted"] == len(messages)
        assert stats["dropped"] == 0
        handler.close()
    finally:
        replicated.stop()


def write_shards(cluster: Cluster, key: str, per_shard: int, logger: str = "app") -> list[dict[str, Any]]:
    """Documents with interleaved timestamps written straight into each of three shards; returns them all."""
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.masters[0].port)
    everything: list[dict[str, Any]] = []
    for index, shard in enumerate(shard_keys(key, 3)):
        docs = [
            document
            for number, document in enumerate(documents(3 * per_shard, logger))
            if number % 3 == index  # record n goes to shard n % 3: time order interleaves the shards
        ]
        write_stream(client, shard, docs)
        everything += docs
    client.close()
    return everything


def test_consumer_reads_every_shard(cluster: Cluster) -> None:
    """RedisLogConsumer(shards=3) gets every record of the three shards once, and acknowledges each on its shard."""
    key, name = "consumed", new_logger_name()
    write_shards(cluster, key, 2000, name)
    consumer = RedisLogConsumer(url=cluster.url, key=key, shards=3, block=0.1)
    with collecting(name) as collector, running(consumer):
        wait_for_numbers(collector, 6000)
    assert sorted(collector.numbers) == list(range(6000))
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.masters[0].port)
    assert [client.xpending(shard, "redis-log-handler")["pending"] for shard in shard_keys(key, 3)] == [0, 0, 0]
    client.close()


def test_tail_merges_shards_by_timestamp(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    """tail --shards 3 shows the newest records of all shards together, in time order."""
    key = "tailed"
    write_shards(cluster, key, 100)
    assert main(["tail", "--url", cluster.url, "--key", key, "--shards", "3", "-n", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit("=", 1)[1] for line in lines] == [str(number) for number in range(293, 300)]


def test_consumer_follows_its_key_to_another_master(cluster: Cluster) -> None:
    """The stream's slot moves while the consumer reads it: after MOVED it reads on, from the new master."""
    key, name = "followed", new_logger_name()
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.masters[0].port)
    slot = key_slot(key.encode())
    consumer = RedisLogConsumer(url=cluster.url, key=key, block=0.1)
    with collecting(name) as collector, running(consumer):
        write_stream(client, key, documents(1000, name))
        wait_for_numbers(collector, 1000)
        cluster.migrate(slot, next(master for master in cluster.masters if master is not cluster.owner(slot)))
        write_stream(client, key, documents(2000, name, 1000))
        wait_for_numbers(collector, 3000)
    client.close()
    assert sorted(collector.numbers) == list(range(3000))  # each once
    assert consumer.stats()["errors"] >= 1  # the MOVED reply


def test_a_cluster_client_from_a_factory(cluster: Cluster, logger: logging.Logger) -> None:
    """client= returning a RedisCluster writes to the master of the key's slot, as a redis+cluster:// URL does."""
    key = "from-a-factory"
    port = cluster.masters[0].port
    handler = RedisHandler(client=lambda: redis.asyncio.RedisCluster(host="127.0.0.1", port=port), key=key)
    logger.addHandler(handler)
    for number in range(2000):
        logger.info("%d", number)
    assert handler.flush(10)
    assert [entry["message"] for entry in cluster_entries(cluster, key)] == [str(number) for number in range(2000)]
    handler.close()
