"""Retention: consumers remove what every group has finished with, count what was removed unread, warn on eviction."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from redis_log_handler import RedisHandler, RedisLogConsumer, shard_keys
from redis_log_handler._cli.main import main
from redis_log_handler._reader import retention as _retention
from redis_log_handler._shared.eviction import warn_if_evicting
from redis_log_handler.testing import EmbeddedRedis

from .helpers import wait_until
from .readers import collecting, documents, new_logger_name, running, wait_for_numbers, write_stream

pytestmark = pytest.mark.slow

FAST = {"block": 0.1, "claim_idle": 1.0, "batch_size": 500}
GROUP = "redis-log-handler"  # the consumers' group unless told
RECORDS = 50_000


@pytest.fixture
def every_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retention runs before every read, so a test knows when it has run (see :func:`settled`)."""
    monkeypatch.setattr(_retention, "RETENTION_INTERVAL", 0.0)


def one_more(client: redis.Redis, key: str, name: str, number: int) -> None:
    """Write one more record after the others were handled: see :func:`settled`."""
    write_stream(client, key, documents(1, name, start=number))


def settled(consumer: RedisLogConsumer, acked: int) -> None:
    """Wait until *consumer* acknowledged *acked* records, the last of them written by :func:`one_more`.

    A read runs retention before it sends the acknowledgements it carries. The read that fetched the
    last record carried (at the latest) those of every earlier one, and the read that acknowledged the
    last record ran retention after that: with everything acknowledged but the last record.
    """
    wait_until(lambda: consumer.stats()["acked"] >= acked, timeout=60)


class TestTrimming:
    @pytest.mark.parametrize(("retain", "at_least", "at_most"), [(0, 0, 500), (5_000, 5_000, 5_000 + 500 + 200)])
    def test_what_every_group_acknowledged_is_removed_down_to_the_history(
        self,
        every_read: None,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        retain: int,
        at_least: int,
        at_most: int,
    ) -> None:
        """50,000 records consumed by one group: the stream keeps the history (and at most a batch in flight).

        With a history, Redis trims whole nodes of the stream, so up to a node more may stay.
        """
        name = new_logger_name()
        write_stream(client, key, documents(RECORDS, name))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=retain, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, RECORDS, timeout=60)
            one_more(client, key, name, RECORDS)
            settled(consumer, RECORDS + 1)
            length = client.xlen(key)
        assert at_least <= length <= at_most, length
        assert consumer.stats()["trimmed"] == RECORDS + 1 - length
        assert sorted(collector.numbers) == list(range(RECORDS + 1))
        assert consumer.stats()["trimmed_unread"] == 0

    def test_a_group_that_read_nothing_keeps_everything(
        self, every_read: None, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Another group that has read nothing holds every entry, however far the consumer's group is."""
        name = new_logger_name()
        write_stream(client, key, documents(RECORDS, name))
        client.xgroup_create(key, "archive", id="0")
        following = client.xrange(key, count=20_001)[-1][0]  # the first entry the other group will not have read
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=0, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, RECORDS, timeout=60)
            one_more(client, key, name, RECORDS)
            settled(consumer, RECORDS + 1)
            assert client.xlen(key) == RECORDS + 1
            assert consumer.stats()["trimmed"] == 0
            # Once the other group has finished with the first 20,000, they go.
            first = client.xreadgroup("archive", "a", {key: ">"}, count=20_000)[0][1]
            client.xack(key, "archive", *[entry_id for entry_id, _ in first])
            one_more(client, key, name, RECORDS + 1)
            settled(consumer, RECORDS + 2)
            assert client.xlen(key) == RECORDS + 2 - 20_000
            assert client.xrange(key, count=1)[0][0] == following

    def test_a_group_halfway_keeps_its_pending_entries(
        self, every_read: None, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Another group that read 30,000 and acknowledged 10,000: nothing from its oldest pending entry on goes."""
        name = new_logger_name()
        write_stream(client, key, documents(RECORDS, name))
        client.xgroup_create(key, "slow", id="0")
        read = client.xreadgroup("slow", "s", {key: ">"}, count=30_000)[0][1]
        client.xack(key, "slow", *[entry_id for entry_id, _ in read[:10_000]])
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=0, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, RECORDS, timeout=60)
            one_more(client, key, name, RECORDS)
            settled(consumer, RECORDS + 1)
            assert client.xlen(key) == RECORDS + 1 - 10_000
            assert client.xrange(key, count=1)[0][0] == read[10_000][0]  # the slow group's oldest pending entry
            assert client.xpending(key, "slow")["pending"] == 20_000

    def test_every_shard_on_its_own(
        self,
        every_read: None,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A sharded key: each shard is trimmed down to what its group has not finished with; status shows each."""
        name = new_logger_name()
        shards = shard_keys(key, 3)
        for index, shard in enumerate(shards):
            write_stream(client, shard, documents(10_000, name, start=10_000 * index))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, shards=3, retain=0, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 30_000, timeout=60)
            for index, shard in enumerate(shards):
                one_more(client, shard, name, 30_000 + index)
            settled(consumer, 30_003)
            wait_until(lambda: all(client.xlen(shard) <= FAST["batch_size"] for shard in shards))
        assert consumer.stats()["trimmed"] == 30_003 - sum(client.xlen(shard) for shard in shards)
        assert main(["status", "--url", redis_server.url, "--key", key, "--shards", "3"]) == 0
        out = capsys.readouterr().out
        for shard in shards:
            assert f"key {shard}: stream, {client.xlen(shard):,} entries, " in out

    def test_the_consume_command_trims(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, tmp_path: Path
    ) -> None:
        """``consume --retain 0`` as a subprocess: the stream shrinks to what is in flight."""
        write_stream(client, key, documents(RECORDS, new_logger_name()))
        config = tmp_path / "logging.json"
        config.write_text(json.dumps({"version": 1, "handlers": {"null": {"class": "logging.NullHandler"}}}))
        command = [sys.executable, "-m", "redis_log_handler", "consume", "--config", str(config)]
        command += ["--url", redis_server.url, "--key", key, "--retain", "0"]
        consumer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: client.xlen(key) <= 500, timeout=60)
        finally:
            consumer.terminate()
            _, stderr = consumer.communicate(timeout=30)
        assert consumer.returncode == 0, stderr
        (group,) = client.xinfo_groups(key)
        assert group["pending"] == 0
        assert group["lag"] == 0

    def test_a_dead_consumer_of_the_same_group_keeps_its_pending_entries_until_they_are_claimed(
        self, every_read: None, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """A consumer of the same group read the first 1,000 entries and died without acknowledging them: with
        retain=0 nothing from its oldest pending entry on goes while they wait, however far the group has read;
        once a consumer claims and acknowledges them, they go too."""
        name = new_logger_name()
        write_stream(client, key, documents(RECORDS, name))
        client.xgroup_create(key, GROUP, id="0")
        dead = client.xreadgroup(GROUP, "dead", {key: ">"}, count=1_000)[0][1]
        patient = RedisLogConsumer(url=redis_server.url, key=key, retain=0, **{**FAST, "claim_idle": 3600})
        with collecting(name) as collector, running(patient):
            wait_for_numbers(collector, RECORDS - 1_000, timeout=60)
            one_more(client, key, name, RECORDS)
            settled(patient, RECORDS - 1_000 + 1)
            assert client.xlen(key) == RECORDS + 1
            assert client.xrange(key, count=1)[0][0] == dead[0][0]
            assert patient.stats()["trimmed"] == 0
        claimer = RedisLogConsumer(url=redis_server.url, key=key, retain=0, **FAST)  # claims after 1 s idle
        with collecting(name) as claimed, running(claimer):
            wait_for_numbers(claimed, 1_000, timeout=60)
            one_more(client, key, name, RECORDS + 1)
            settled(claimer, 1_000 + 1)
            assert client.xpending(key, GROUP)["pending"] <= FAST["batch_size"]
            assert client.xlen(key) <= FAST["batch_size"]
        assert sorted(collector.numbers + claimed.numbers) == list(range(RECORDS + 2))

    def test_retain_seconds_keeps_what_is_younger(
        self, every_read: None, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """retain_seconds=60 with retain=0: of entries an hour old and entries of now, all acknowledged, the young
        stay, every one of them, and the old go."""
        name = new_logger_name()
        hour_ago = (int(client.time()[0]) - 3_600) * 1_000
        with client.pipeline(transaction=False) as pipe:
            for number, document in enumerate(documents(10_000, name)):
                pipe.xadd(key, {"data": json.dumps(document)}, id=f"{hour_ago + number}-0")
            pipe.execute()
        write_stream(client, key, documents(2_000, name, start=10_000))  # ids of now
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=0, retain_seconds=60, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 12_000, timeout=60)
            one_more(client, key, name, 12_000)
            settled(consumer, 12_001)
        kept = [json.loads(fields[b"data"])["extra"]["number"] for _, fields in client.xrange(key)]
        assert kept == list(range(10_000, 12_001))
        assert consumer.stats()["trimmed"] == 10_000

    def test_retain_none_keeps_everything(
        self, every_read: None, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """retain=None turns trimming off: every entry stays after the group acknowledged it."""
        name = new_logger_name()
        write_stream(client, key, documents(1_000, name))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=None, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 1_000)
            one_more(client, key, name, 1_000)
            settled(consumer, 1_001)
        assert client.xlen(key) == 1_001
        assert consumer.stats()["trimmed"] == 0


_PRODUCER = """
import logging, sys, threading
from redis_log_handler import RedisHandler

url, key, name = sys.argv[1:4]
log = logging.getLogger(name)
log.setLevel(logging.INFO)
log.addHandler(RedisHandler(url=url, key=key))

def work(thread):
    for number in range(5_000):
        log.info("record", extra={"number": thread * 5_000 + number})

workers = [threading.Thread(target=work, args=(thread,)) for thread in range(4)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
"""


class TestScriptErrors:
    def test_a_failing_script_does_not_stop_the_consumer(
        self,
        every_read: None,
        monkeypatch: pytest.MonkeyPatch,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A server that cannot run the script (Redis 6.2 lacks its XINFO fields): records are read, nothing goes."""
        monkeypatch.setattr(_retention, "_SCRIPT", "return redis.error_reply('ERR no retention here')")
        name = new_logger_name()
        write_stream(client, key, documents(1_000, name))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=0, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 1_000)
            wait_until(lambda: consumer.stats()["acked"] == 1_000)
        assert client.xlen(key) == 1_000
        assert consumer.stats()["errors"] == 0
        assert "retention skipped for" in capsys.readouterr().err


class TestUnderFaults:
    def test_producers_consumers_and_a_restart_lose_nothing(
        self, every_read: None, own_server: EmbeddedRedis, key: str
    ) -> None:
        """A process logs from four threads unpaced while two consumers of one group read with retain=0, and Redis
        is killed and restarted (AOF) in the middle: every record is handled, and the stream ends trimmed.
        """
        name = new_logger_name()
        consumers = [RedisLogConsumer(url=own_server.url, key=key, retain=0, name=f"c{n}", **FAST) for n in (1, 2)]
        client = redis.Redis.from_url(own_server.url)
        with collecting(name) as collector, running(consumers[0]), running(consumers[1]):
            producer = subprocess.Popen([sys.executable, "-c", _PRODUCER, own_server.url, key, name])
            try:
                wait_until(lambda: len(collector.records) >= 5_000, timeout=60)
                own_server.kill()
                own_server.start()
                assert producer.wait(timeout=120) == 0
            finally:
                producer.kill()
            wait_until(lambda: len(set(collector.numbers)) == 20_000, timeout=120)
            one_more(client, key, name, 20_000)
            wait_until(lambda: client.xlen(key) <= 2 * FAST["batch_size"], timeout=30)
        assert set(collector.numbers) == set(range(20_001))
        removed = int(client.xinfo_stream(key)["entries-added"]) - client.xlen(key)  # duplicates included
        trimmed = sum(consumer.stats()["trimmed"] for consumer in consumers)
        # A script running when the server was killed may have trimmed entries whose count was lost with
        # its reply: one script per consumer, each removing what was acknowledged since the previous one
        # (retention runs before every read here: a batch or two).
        assert removed - 2 * 2 * FAST["batch_size"] <= trimmed <= removed
        assert sum(consumer.stats()["trimmed_unread"] for consumer in consumers) == 0
        client.close()


class TestTrimmedUnread:
    def test_the_handlers_maxlen_is_counted_exactly(
        self,
        every_read: None,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """maxlen removes entries the group has not read: the consumer counts exactly those, and says so once."""
        name = new_logger_name()
        write_stream(client, key, documents(5_000, name))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, retain=None, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 5_000)
        # While no consumer runs, a handler with maxlen writes four times as many.
        handler = RedisHandler(url=redis_server.url, key=key, maxlen=1_000)
        log = logging.getLogger(f"{name}.writer")  # a child of the logger the records are collected from
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        for number in range(5_000, 25_000):
            log.info("record %d", number, extra={"number": number})
        assert handler.flush(30)
        log.removeHandler(handler)
        handler.close()
        left = client.xlen(key)
        assert left < 2_000  # maxlen trims whole nodes: about 1,000 stay
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, left)
            wait_until(lambda: consumer.stats()["trimmed_unread"] > 0)
        stats = consumer.stats()
        assert stats["trimmed_unread"] == 25_000 - 5_000 - left
        assert stats["handled"] == 5_000 + left
        assert sorted(collector.numbers) == list(range(25_000 - left, 25_000))
        assert capsys.readouterr().err.count("were removed before group 'redis-log-handler' read them") == 1


class TestEviction:
    @pytest.mark.parametrize(
        ("policy", "ttl", "warned"),
        [
            ("allkeys-lru", False, True),
            ("allkeys-random", True, True),
            ("volatile-lru", False, False),  # the log key has no time to live: never a candidate
            ("volatile-ttl", True, True),
            ("noeviction", True, False),
            (None, True, False),  # CONFIG GET refused: nothing known, nothing said
        ],
    )
    def test_which_policies_can_evict_the_key(
        self, policy: str | None, ttl: bool, warned: bool, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """allkeys-* always can; volatile-* only a key with a ttl; the warning is said once per key."""
        for _ in range(3):
            warn_if_evicting(policy, key, "handler", ttl=ttl)
        assert capsys.readouterr().err.count("Redis evicts keys") == (1 if warned else 0)

    @pytest.fixture
    def evicting(self, own_server: EmbeddedRedis) -> EmbeddedRedis:
        """A server of the test's own with ``maxmemory-policy allkeys-lru``."""
        with redis.Redis.from_url(own_server.url) as admin:
            admin.config_set("maxmemory-policy", "allkeys-lru")
        return own_server

    def test_the_handler_and_the_consumer_each_warn_once(
        self, evicting: EmbeddedRedis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Under an evicting policy the handler and the consumer each say once that the key can be evicted."""
        name = new_logger_name()
        handler = RedisHandler(url=evicting.url, key=key)
        log = logging.getLogger(f"{name}.writer")  # a child of the logger the records are collected from
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        for number in range(100):
            log.info("record %d", number)
        assert handler.flush(10)
        log.removeHandler(handler)
        handler.close()
        consumer = RedisLogConsumer(url=evicting.url, key=key, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 100)
        lines = [line for line in capsys.readouterr().err.splitlines() if "allkeys-lru" in line]
        assert len(lines) == 2, lines
        assert sum("(seen by the handler)" in line for line in lines) == 1
        assert sum("(seen by the consumer)" in line for line in lines) == 1
        assert all("noeviction" in line for line in lines)


class TestStatus:
    def test_status_shows_the_key_and_each_groups_progress(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """status: the stream's length, memory and oldest entry; each group's pending, lag and trimmed unread."""
        write_stream(client, key, documents(300, "app"))
        client.xgroup_create(key, "reading", id="0")
        client.xreadgroup("reading", "r", {key: ">"}, count=100)  # 100 pending, 200 not read
        client.xtrim(key, maxlen=50, approximate=False)  # 150 of those 200 go before the group read them
        assert main(["status", "--url", redis_server.url, "--key", key]) == 0
        out = capsys.readouterr().out
        assert f"key {key}: stream, 50 entries, " in out
        assert " bytes, oldest " in out
        assert "group reading: 100 pending, lag 200, trimmed unread 150" in out
        assert main(["status", "--url", redis_server.url, "--key", key, "--json"]) == 0
        report = json.loads(capsys.readouterr().out.splitlines()[-1])["report"]
        assert report["length"] == 50
        assert report["memory"] > 0
        assert report["groups"] == [{"name": "reading", "pending": 100, "lag": 200, "trimmed_unread": 150}]
