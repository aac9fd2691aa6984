"""RedisLogConsumer on a real server: at least once, no repeats, poison to the dead-letter stream, list, Pub/Sub."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
import redis

from redis_log_handler import RedisLogConsumer, shard_keys
from redis_log_handler.testing import EmbeddedRedis

from .helpers import wait_until
from .readers import (
    collecting,
    documents,
    new_logger_name,
    running,
    wait_for_numbers,
    write_list,
    write_stream,
)

FAST = {"block": 0.1, "claim_idle": 1.0}


class TestConfiguration:
    @pytest.mark.parametrize(
        ("arguments", "parameter"),
        [
            ({"key": ""}, "key"),
            ({"mode": "queue"}, "mode"),
            ({"group": ""}, "group"),
            ({"name": ""}, "name"),
            ({"start": "1-0"}, "start"),
            ({"batch_size": 0}, "batch_size"),
            ({"block": 0}, "block"),
            ({"block": float("nan")}, "block"),
            ({"claim_idle": 0.5, "block": 1.0}, "claim_idle"),
            ({"dedupe_window": -1}, "dedupe_window"),
            ({"dead_letter": ""}, "dead_letter"),
            ({"max_failures": 0}, "max_failures"),
            ({"url": "http://x"}, "url"),
        ],
    )
    def test_bad_parameter_names_itself(self, arguments: dict[str, Any], parameter: str) -> None:
        """A bad value raises ValueError naming the parameter, at construction."""
        with pytest.raises(ValueError, match=rf"^{parameter} "):
            RedisLogConsumer(**arguments)

    def test_no_io_in_the_constructor(self) -> None:
        """A consumer of an unreachable server is built without error (as dictConfig needs)."""
        consumer = RedisLogConsumer(url="redis://127.0.0.1:1/0")
        assert consumer.stats()["read"] == 0
        consumer.close()

    def test_defaults(self) -> None:
        """The consumer's name defaults to <host>-<pid>, the dead-letter key to <key>:dead."""
        settings = RedisLogConsumer(key="app:logs").settings
        assert settings.name == f"{socket.gethostname()}-{os.getpid()}"
        assert settings.dead_letter == "app:logs:dead"


class TestStream:
    def test_records_in_order_and_acknowledged(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """records() yields every document in order; each is acknowledged once the loop asks for the next."""
        write_stream(client, key, documents(1200, "app"))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, **FAST)
        seen = []
        for document in consumer.records():
            seen.append(document["extra"]["number"])
            if len(seen) == 1200:
                break
        consumer.close()
        assert seen == list(range(1200))
        pending = client.xpending(key, "redis-log-handler")
        assert pending["pending"] == 1  # the last one: the loop never asked for another
        assert consumer.stats()["acked"] == 1199

    def test_a_loop_that_stops_gets_the_record_again(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """A document whose loop body stopped (an exception) is read again by the next loop, with the rest."""
        write_stream(client, key, documents(10, "app"))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, batch_size=4, **FAST)

        def fail_at_five() -> None:
            for document in consumer.records():
                if document["extra"]["number"] == 5:
                    raise RuntimeError("the loop body failed")

        with pytest.raises(RuntimeError):
            fail_at_five()
        again = []
        for document in consumer.records():
            again.append(document["extra"]["number"])
            if again[-1] == 9:
                break
        consumer.close()
        assert again == [5, 6, 7, 8, 9]

    def test_a_batch_read_ahead_is_not_lost_when_the_loop_stops(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Entries read ahead for a loop that then stopped stay pending: another consumer claims and handles them."""
        name = new_logger_name()
        write_stream(client, key, documents(100, name))
        stopped = RedisLogConsumer(url=redis_server.url, key=key, name="stopped", batch_size=10, **FAST)
        for document in stopped.records():
            if document["extra"]["number"] == 14:  # the second batch in hand, the third read ahead
                break
        stopped.close()
        assert client.xpending(key, "redis-log-handler")["pending"] == 16  # 14 was not acknowledged: 14 to 29
        other = RedisLogConsumer(url=redis_server.url, key=key, name="other", batch_size=10, **FAST)
        with collecting(name) as collector, running(other):
            wait_for_numbers(collector, 86)
            wait_until(lambda: client.xpending(key, "redis-log-handler")["pending"] == 0)
        assert sorted(collector.numbers) == list(range(14, 100))
        assert other.stats()["claimed"] == 16

    def test_two_consumers_split_the_work_exactly_once(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Two consumers of one group handle every record exactly once between them, both taking a share."""
        name = new_logger_name()
        with collecting(name) as collector:
            first = RedisLogConsumer(url=redis_server.url, key=key, name="one", batch_size=50, **FAST)
            second = RedisLogConsumer(url=redis_server.url, key=key, name="two", batch_size=50, **FAST)
            with running(first), running(second):
                for start in range(0, 5000, 500):  # batches as producers write them, while both read
                    write_stream(client, key, documents(500, name, start))
                wait_for_numbers(collector, 5000)
        assert sorted(collector.numbers) == list(range(5000))
        assert first.stats()["handled"] > 0
        assert second.stats()["handled"] > 0
        assert client.xpending(key, "redis-log-handler")["pending"] == 0

    def test_a_repeated_record_is_handled_once(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """A record the producer sent twice (unknown outcome) is handled once and counted as a duplicate."""
        name = new_logger_name()
        docs = documents(20, name)
        write_stream(client, key, docs + docs[5:8])
        consumer = RedisLogConsumer(url=redis_server.url, key=key, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_until(lambda: consumer.stats()["acked"] == 23)
        assert collector.numbers == list(range(20))
        assert consumer.stats()["duplicates"] == 3

    def test_poison_goes_to_the_dead_letter_stream(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Entries that are not records are dead-lettered with the reason and acknowledged; the rest flows."""
        name = new_logger_name()
        write_stream(client, key, documents(3, name))
        client.xadd(key, {"data": "not json"})
        client.xadd(key, {"message": "no data field"})
        client.xadd(key, {"data": "[1, 2]"})
        write_stream(client, key, documents(3, name, 3))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 6)
            wait_until(lambda: client.xpending(key, "redis-log-handler")["pending"] == 0)
        assert collector.numbers == list(range(6))
        dead = client.xrange(f"{key}:dead")
        assert [fields[b"data"] for _, fields in dead] == [b"not json", b'{"message": "no data field"}', b"[1, 2]"]
        reasons = [fields[b"error"].decode() for _, fields in dead]
        assert reasons[0].startswith("the payload is not JSON")
        assert reasons[1] == "the entry has no 'data' field"
        assert reasons[2] == "the payload is JSON but not an object (a list)"
        assert all(fields[b"entry"] and fields[b"key"] == key.encode() for _, fields in dead)
        assert consumer.stats()["dead_lettered"] == 3

    def test_a_record_the_handlers_keep_failing_on_is_dead_lettered(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A handler raising max_failures times sends the record to the dead-letter key; a single failure does not."""
        name = new_logger_name()
        write_stream(client, key, documents(6, name))
        attempts: dict[int, int] = {}

        def fail(record: logging.LogRecord) -> bool:
            number: int = record.number  # type: ignore[attr-defined]
            attempts[number] = attempts.get(number, 0) + 1
            return number == 2 or (number == 4 and attempts[number] == 1)

        consumer = RedisLogConsumer(url=redis_server.url, key=key, max_failures=3, **FAST)
        with collecting(name, fail) as collector, running(consumer):
            wait_until(lambda: consumer.stats()["acked"] == 6)
        assert collector.numbers == [0, 1, 3, 4, 5]
        assert attempts[2] == 3
        ((_, fields),) = client.xrange(f"{key}:dead")
        assert json.loads(fields[b"data"])["extra"]["number"] == 2
        assert fields[b"error"] == b"local handlers failed 3 times, last: OSError: disk full"
        stats = consumer.stats()
        assert (stats["errors"], stats["dead_lettered"], stats["handled"]) == (4, 1, 5)
        assert "a local handler failed" in capsys.readouterr().err

    def test_entries_trimmed_while_pending_leave_the_pending_list(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Entries trimmed after a dead consumer read them are cleared and counted, not looped on."""
        name = new_logger_name()
        client.xgroup_create(key, "redis-log-handler", id="0", mkstream=True)
        write_stream(client, key, documents(50, name))
        client.xreadgroup("redis-log-handler", "dead", {key: ">"}, count=30)  # a consumer that then died
        client.xtrim(key, maxlen=20, approximate=False)  # gone from the stream, not from the pending list
        consumer = RedisLogConsumer(url=redis_server.url, key=key, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 20)
            wait_until(lambda: consumer.stats()["deleted_pending"] == 30, timeout=10)
            wait_until(lambda: client.xpending(key, "redis-log-handler")["pending"] == 0)
        assert collector.numbers == list(range(30, 50))

    def test_own_history_after_a_restart_under_the_same_name(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """A consumer restarted under its name handles what it had read, skipping entries trimmed meanwhile."""
        name = new_logger_name()
        client.xgroup_create(key, "redis-log-handler", id="0", mkstream=True)
        write_stream(client, key, documents(10, name))
        client.xreadgroup("redis-log-handler", "worker", {key: ">"}, count=10)
        ids = [entry_id for entry_id, _ in client.xrange(key)]
        client.xdel(key, *ids[:4])
        consumer = RedisLogConsumer(url=redis_server.url, key=key, name="worker", block=0.1, claim_idle=3600)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 6)
            wait_until(lambda: client.xpending(key, "redis-log-handler")["pending"] == 0)
        assert collector.numbers == list(range(4, 10))
        assert consumer.stats()["deleted_pending"] == 4

    def test_lag_counts_what_the_group_has_not_read(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """stats()['lag'] is the group's count of entries not yet delivered, as the server counts it: above 0 while
        the consumer is behind, 0 once it caught up."""
        name = new_logger_name()
        write_stream(client, key, documents(30, name))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, batch_size=10, **FAST)
        assert consumer.stats()["lag"] is None  # nothing asked yet
        records = consumer.records()
        first = [next(records) for _ in range(10)]
        assert [document["message"] for document in first] == [f"record {number}" for number in range(10)]
        (group,) = client.xinfo_groups(key)
        assert consumer.stats()["lag"] == group["lag"] > 0  # 20, or 10 with the next batch already read ahead
        records.close()
        with collecting(name), running(consumer):
            wait_until(lambda: consumer.stats()["lag"] == 0)

    def test_run_in_a_thread_installs_no_signal_handlers(self, redis_server: EmbeddedRedis, key: str) -> None:
        """run() outside the main thread leaves the process's signal handlers alone."""
        before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        consumer = RedisLogConsumer(url=redis_server.url, key=key, **FAST)
        with running(consumer):
            wait_until(lambda: consumer.stats()["lag"] is not None)
            assert {number: signal.getsignal(number) for number in before} == before


class TestList:
    def test_pops_in_batches_and_gives_back_what_was_not_handled(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """A loop that stops puts the rest of its popped batch back at the head, in order."""
        write_list(client, key, documents(10, "app"))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, mode="list", batch_size=6, **FAST)
        for document in consumer.records():
            if document["extra"]["number"] == 2:
                break
        assert client.llen(key) == 8
        assert [json.loads(item)["extra"]["number"] for item in client.lrange(key, 0, -1)] == list(range(2, 10))
        consumer.close()

    def test_lag_is_the_list_length(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """In list mode, stats()['lag'] is what is left in the list after the last pop."""
        write_list(client, key, documents(30, "app"))
        consumer = RedisLogConsumer(url=redis_server.url, key=key, mode="list", batch_size=10, **FAST)
        records = consumer.records()
        next(records)
        assert consumer.stats()["lag"] == 20
        records.close()
        consumer.close()

    def test_run_handles_every_record(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """run() in list mode re-emits every element once, in order, and poison goes to the dead-letter stream."""
        name = new_logger_name()
        write_list(client, key, documents(700, name))
        client.rpush(key, "garbage")
        consumer = RedisLogConsumer(url=redis_server.url, key=key, mode="list", batch_size=100, **FAST)
        with collecting(name) as collector, running(consumer):
            wait_for_numbers(collector, 700)
            wait_until(lambda: consumer.stats()["dead_lettered"] == 1)
        assert collector.numbers == list(range(700))
        assert client.llen(key) == 0
        assert client.xlen(f"{key}:dead") == 1


class TestPubSub:
    def test_receives_what_is_published(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """A pubsub consumer re-emits the records published while it listens."""
        name = new_logger_name()
        consumer = RedisLogConsumer(url=redis_server.url, key=key, mode="pubsub", **FAST)
        with collecting(name) as collector, running(consumer):
            wait_until(lambda: client.pubsub_numsub(key)[0][1] == 1)
            for document in documents(50, name):
                client.publish(key, json.dumps(document))
            wait_for_numbers(collector, 50)
        assert collector.numbers == list(range(50))


CRASHING_CONSUMER = textwrap.dedent(
    """
    import logging, sys, threading
    from redis_log_handler import RedisLogConsumer, shard_keys

    url, key, logger_name, marker = sys.argv[1:5]

    class Hang(logging.Handler):
        # Handles 25 records, then hangs in the middle of its batch until killed.
        def __init__(self):
            super().__init__()
            self.count = 0

        def emit(self, record):
            self.count += 1
            with open(marker, "a") as out:
                out.write(f"{record.number}\\n")
            if self.count == 25:
                threading.Event().wait()

    logging.getLogger(logger_name).addHandler(Hang())
    logging.getLogger(logger_name).propagate = False
    RedisLogConsumer(url=url, key=key, name="doomed", batch_size=100, block=0.1, claim_idle=1.0).run()
    """
)


@pytest.mark.slow
def test_a_killed_consumer_loses_nothing(redis_server: EmbeddedRedis, client: redis.Redis, key: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A consumer killed (SIGKILL) mid-batch loses nothing: a running peer claims its entries after claim_idle,
    although that peer trims everything its group has finished with (``retain=0``) meanwhile."""
    name = new_logger_name()
    marker = tmp_path / "handled"
    survivor = RedisLogConsumer(url=redis_server.url, key=key, name="survivor", batch_size=100, retain=0, **FAST)
    with collecting(name) as collector, running(survivor):
        wait_until(lambda: survivor.stats()["lag"] is not None)  # the survivor runs before the other one dies
        doomed = subprocess.Popen(
            [sys.executable, "-c", CRASHING_CONSUMER, redis_server.url, key, name, str(marker)],
        )
        try:
            wait_until(lambda: client.xinfo_groups(key) and client.xinfo_groups(key)[0]["consumers"] >= 2)
            write_stream(client, key, documents(1000, name))
            wait_until(lambda: marker.exists() and len(marker.read_text().split()) == 25)
            doomed.send_signal(signal.SIGKILL)
        finally:
            doomed.wait(timeout=10)
        # What the doomed consumer had read and not acknowledged: its batch in hand (and one read ahead).
        left = client.xpending_range(key, "redis-log-handler", "-", "+", 10_000, consumername="doomed")
        assert left
        wait_until(lambda: {*collector.numbers} | {int(n) for n in marker.read_text().split()} >= set(range(1000)))
        wait_until(lambda: client.xpending(key, "redis-log-handler")["pending"] == 0)
    assert survivor.stats()["claimed"] >= len(left)  # (more if it took over entries before the kill, idle 1 s)
    assert len(collector.numbers) == len(set(collector.numbers))


@pytest.mark.slow
def test_the_consumer_rides_out_a_server_restart(
    own_server: EmbeddedRedis, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A consumer keeps going through a server restart: it reports on stderr, retries, and reads on."""
    name = new_logger_name()
    with redis.Redis.from_url(own_server.url) as client:
        write_stream(client, key, documents(100, name))
    consumer = RedisLogConsumer(url=own_server.url, key=key, **FAST)
    with collecting(name) as collector, running(consumer):
        wait_for_numbers(collector, 100)
        own_server.kill()
        wait_until(lambda: consumer.stats()["errors"] > 0)
        own_server.restart()  # appendonly: the stream and its group survive
        with redis.Redis.from_url(own_server.url) as client:
            write_stream(client, key, documents(100, name, 100))
        wait_for_numbers(collector, 200, timeout=30)
    assert collector.numbers == list(range(200))
    assert "cannot read from Redis" in capsys.readouterr().err


def test_signal_stops_run_in_the_main_thread(redis_server: EmbeddedRedis, key: str) -> None:
    """SIGTERM in the main thread makes run() return after the batch in hand, and the old handler comes back.

    The signal is sent once run() has installed its own handler (before that it would end the test run);
    if run() never does, the consumer is closed instead and the test fails."""
    consumer = RedisLogConsumer(url=redis_server.url, key=key, **FAST)
    before = signal.getsignal(signal.SIGTERM)
    sent = threading.Event()

    def terminate_once_handled() -> None:
        deadline = time.monotonic() + 30
        while signal.getsignal(signal.SIGTERM) == before:
            if time.monotonic() > deadline:
                consumer.close()  # run() returns: the assertion below says what went wrong
                return
            time.sleep(0.01)
        sent.set()
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_handled)
    sender.start()
    try:
        consumer.run()
    finally:
        sender.join()
        consumer.close()
    assert sent.is_set(), "run() never installed a SIGTERM handler"
    assert signal.getsignal(signal.SIGTERM) == before


def test_shards_on_one_server(redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
    """On a single server shards are just keys: the consumer reads each and acknowledges each on its own."""
    name = new_logger_name()
    keys = shard_keys(key, 3)
    for index, shard in enumerate(keys):
        write_stream(client, shard, documents(100, name, start=100 * index))
    consumer = RedisLogConsumer(url=redis_server.url, key=key, shards=3, **FAST)
    with collecting(name) as collector, running(consumer):
        wait_for_numbers(collector, 300)
        wait_until(lambda: consumer.stats()["lag"] == 0)  # summed over the shards, refreshed once a second
    assert sorted(collector.numbers) == list(range(300))
    assert [client.xpending(shard, "redis-log-handler")["pending"] for shard in keys] == [0, 0, 0]
