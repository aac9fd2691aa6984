"""The far end: can one RedisLogConsumer keep up with a busy producer, and what does tail -n 100 cost?

- **Producer**: one thread logs N records through a RedisHandler (stream mode,
  defaults) and flushes; records/s until all are in Redis (end to end).
- **Consumer**: ``RedisLogConsumer.run`` reads those N records, rebuilds each
  LogRecord, hands it to a no-op handler and acknowledges; records/s until all
  are acknowledged. The ratio consumer / producer must be at least 1.0.
- **Two consumers** of one group, in two processes (one process shares one
  GIL), on 2 N records: the scaling of a group.
- **tail -n 100** on streams of 10,000 and 1,000,000 entries (100,000 in the
  smoke run): the median of repeated runs, and their ratio (target <= 1.5).
"""

from __future__ import annotations

import io
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import redis
from common import MESSAGE

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler._tail import print_last

_CONSUMER_CHILD = """
import logging, sys
from redis_log_handler import RedisLogConsumer

url, key, name = sys.argv[1:4]
class Nothing(logging.Handler):
    def emit(self, record):
        pass
logging.getLogger("bench").addHandler(Nothing())
logging.getLogger("bench").propagate = False
consumer = RedisLogConsumer(url=url, key=key, name=name, block=0.05)
sys.stdin.readline()  # released with the other consumers, once every process is up
consumer.run()
"""


class _Counting(logging.Handler):
    """A no-op handler that stops the consumer once it has seen *records* records."""

    def __init__(self, records: int, stop: threading.Event) -> None:
        super().__init__()
        self.seen = 0
        self._records = records
        self._stop = stop

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        if self.seen == self._records:
            self._stop.set()


def _produce(url: str, key: str, records: int) -> float:
    """Log *records* from one thread into *key*; records/s until all are in Redis."""
    handler = RedisHandler(url=url, key=key)
    log = logging.getLogger("bench")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    started = time.perf_counter()
    for number in range(records):
        log.info(MESSAGE, "/api/orders", number)
    delivered = handler.flush(120)
    elapsed = time.perf_counter() - started
    log.removeHandler(handler)
    handler.close()
    assert delivered, "the producer did not deliver everything"
    return records / elapsed


def _consume(url: str, key: str, records: int) -> float:
    """One consumer (run() in this thread, a new group) on *records* entries; records/s until all are acknowledged."""
    stop = threading.Event()
    counting = _Counting(records, stop)
    log = logging.getLogger("bench")
    log.addHandler(counting)
    consumer = RedisLogConsumer(url=url, key=key, group=f"bench-{uuid.uuid4().hex[:8]}", block=0.05)
    started = time.perf_counter()
    consumer.run(stop)  # returns after acknowledging the batch in which the last record was handled
    elapsed = time.perf_counter() - started
    log.removeHandler(counting)
    assert consumer.stats()["acked"] == records, consumer.stats()
    consumer.close()
    return records / elapsed


def _group_of_processes(url: str, key: str, records: int, consumers: int) -> float:
    """*consumers* consumer processes of one new group; records/s from their release until all are acknowledged."""
    client = redis.Redis.from_url(url)
    client.xgroup_create(key, "redis-log-handler", id="0")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CONSUMER_CHILD, url, key, f"c{index}"], stdin=subprocess.PIPE, text=True
        )
        for index in range(consumers)
    ]
    time.sleep(1.0)  # let every child import and build its consumer before the clock starts
    started = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    while True:
        (info,) = client.xinfo_groups(key)
        if info["lag"] == 0 and info["pending"] == 0:
            break
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    for child in children:
        child.terminate()
        child.wait()
    client.close()
    return records / elapsed


def _fill(client: redis.Redis, key: str, entries: int) -> None:
    """Write *entries* documents (the producer's own size) into *key*, fast."""
    handler_document = {
        "@timestamp": "2026-01-01T00:00:00.000000Z", "@version": "1", "level": "INFO", "levelno": 20,
        "logger": "bench", "message": "request /api/orders served in 42 ms", "source": "stdlib",
        "module": "consumer", "function": "_fill", "line": 1, "file": __file__, "process": 1,
        "process_name": "MainProcess", "thread": 1, "thread_name": "MainThread", "host": "bench",
        "id": "bench-1", "exception": None, "stack": None, "extra": {},
    }  # fmt: skip
    producer = uuid.uuid4().hex[:16]
    chunk = 5000
    for start in range(0, entries, chunk):
        with client.pipeline(transaction=False) as pipe:
            for number in range(start, min(start + chunk, entries)):
                pipe.xadd(key, {"data": json.dumps({**handler_document, "id": f"{producer}-{number}"})})
            pipe.execute()


def _tail_costs(client: redis.Redis, keys: list[str], reps: int) -> list[float]:
    """Median seconds of ``tail -n 100`` on each of *keys* (written into a string), measured in turns."""
    times: list[list[float]] = [[] for _ in keys]
    for _ in range(reps):
        for index, key in enumerate(keys):
            out = io.StringIO()
            started = time.perf_counter()
            print_last(client, key, 100, out)
            times[index].append(time.perf_counter() - started)
            assert out.getvalue().count("\n") == 100
    return [statistics.median(each) for each in times]


def consumer_benchmark(url: str, records: int, reps: int, big_stream: int) -> dict[str, Any]:
    """Producer vs consumer rates (medians of *reps*), group scaling, and tail -n 100 on a small and a big stream."""
    client = redis.Redis.from_url(url)
    producer, consumer = [], []
    for _ in range(reps):
        key = f"bench:consumer:{uuid.uuid4().hex}"
        producer.append(_produce(url, key, records))
        consumer.append(_consume(url, key, records))
        client.delete(key)
    scaling = {}
    for consumers in (1, 2):
        rates = []
        for _ in range(reps):
            key = f"bench:group:{uuid.uuid4().hex}"
            _fill(client, key, 2 * records)
            rates.append(_group_of_processes(url, key, 2 * records, consumers))
            client.delete(key)
        scaling[consumers] = statistics.median(rates)
    keys = {entries: f"bench:tail:{entries}:{uuid.uuid4().hex}" for entries in (10_000, big_stream)}
    for entries, key in keys.items():
        _fill(client, key, entries)
    tail = dict(zip(keys, _tail_costs(client, list(keys.values()), 101), strict=True))
    client.delete(*keys.values())
    client.close()
    return {
        "records": records,
        "producer_rate": statistics.median(producer),
        "consumer_rate": statistics.median(consumer),
        "ratio": statistics.median(c / p for c, p in zip(consumer, producer, strict=True)),
        "runs": [{"producer": p, "consumer": c} for p, c in zip(producer, consumer, strict=True)],
        "group_rates": scaling,
        "tail_seconds": tail,
        "tail_ratio": tail[big_stream] / tail[10_000],
    }


def print_consumer(result: dict[str, Any]) -> None:
    """The consumer section of the report."""
    print(f"\n## Consumer ({result['records']:,} records; medians)\n")
    print(f"  producer, 1 thread, end to end : {result['producer_rate']:>10,.0f} records/s")
    print(f"  consumer, run() to a no-op     : {result['consumer_rate']:>10,.0f} records/s")
    print(f"  consumer / producer            : {result['ratio']:.2f}x   (target >= 1.0)")
    one, two = result["group_rates"][1], result["group_rates"][2]
    print(f"  group of 1 / 2 processes       : {one:,.0f} / {two:,.0f} records/s ({two / one:.2f}x)")
    small, big = (result["tail_seconds"][entries] for entries in sorted(result["tail_seconds"]))
    entries = max(result["tail_seconds"])
    print(
        f"  tail -n 100                    : {small * 1000:.2f} ms on 10,000 entries, {big * 1000:.2f} ms on "
        f"{entries:,} ({result['tail_ratio']:.2f}x, target <= 1.5)"
    )
