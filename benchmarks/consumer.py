"""The far end: can one RedisLogConsumer keep up with a busy producer, and what does tail -n 100 cost?

- **Producer and consumer at once**: one consumer process (``RedisLogConsumer.run``
  rebuilding each LogRecord into a no-op handler, acknowledging) reads the key as
  a group while one thread here logs N records through a RedisHandler (stream
  mode, defaults). Reported: the producer's rate end to end, the largest backlog
  the group had (lag + pending, sampled every 20 ms) and how long after the
  producer's last record was in Redis the group had acknowledged everything.
  A consumer that keeps up has a small backlog and catches up within a batch or
  two; one that does not ends N x (1 - its rate / the producer's) behind.
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

from redis_log_handler import RedisHandler
from redis_log_handler._cli.tail import print_last

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
print("ready", flush=True)
sys.stdin.readline()  # released with the other consumers, once every process is up
consumer.run()
"""


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


def _start_consumers(url: str, key: str, consumers: int) -> list[subprocess.Popen[str]]:
    """*consumers* consumer processes of the group ``redis-log-handler``, each built and waiting for "go"."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CONSUMER_CHILD, url, key, f"c{index}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(consumers)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    return children


def _release(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def _stop(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        child.terminate()
        child.wait()


def _backlog(client: redis.Redis, key: str) -> int:
    """Entries of *key* the group has not acknowledged: not yet delivered (lag) plus delivered and pending."""
    (info,) = client.xinfo_groups(key)
    return int(info["lag"] or 0) + int(info["pending"])


def _concurrent(url: str, key: str, records: int) -> dict[str, float]:
    """One consumer process reads *key* while this thread logs *records* into it; see the module docstring."""
    client = redis.Redis.from_url(url)
    client.xgroup_create(key, "redis-log-handler", id="0", mkstream=True)
    children = _start_consumers(url, key, 1)
    _release(children)
    largest, producing = 0, threading.Event()
    producing.set()

    def sample() -> None:
        nonlocal largest
        sampler = redis.Redis.from_url(url)
        while producing.is_set():
            largest = max(largest, _backlog(sampler, key))
            time.sleep(0.02)
        sampler.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    rate = _produce(url, key, records)
    in_redis = time.perf_counter()
    producing.clear()
    sampler.join()
    while _backlog(client, key) > 0:
        time.sleep(0.002)
    caught_up = time.perf_counter() - in_redis
    _stop(children)
    client.close()
    return {"producer": rate, "largest_backlog": largest, "catch_up_seconds": caught_up}


def _group_of_processes(url: str, key: str, records: int, consumers: int) -> float:
    """*consumers* consumer processes of one new group; records/s from their release until all are acknowledged."""
    client = redis.Redis.from_url(url)
    client.xgroup_create(key, "redis-log-handler", id="0")
    children = _start_consumers(url, key, consumers)
    started = time.perf_counter()
    _release(children)
    while _backlog(client, key) > 0:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    _stop(children)
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
    together = []
    for _ in range(reps):
        key = f"bench:consumer:{uuid.uuid4().hex}"
        together.append(_concurrent(url, key, records))
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
        "producer_rate": statistics.median(run["producer"] for run in together),
        "largest_backlog": statistics.median(run["largest_backlog"] for run in together),
        "catch_up_seconds": statistics.median(run["catch_up_seconds"] for run in together),
        "runs": together,
        "group_rates": scaling,
        "tail_seconds": tail,
        "tail_ratio": tail[big_stream] / tail[10_000],
    }


def print_consumer(result: dict[str, Any]) -> None:
    """The consumer section of the report."""
    print(f"\n## Consumer ({result['records']:,} records; medians)\n")
    print(f"  producer, 1 thread, end to end, a consumer reading : {result['producer_rate']:>10,.0f} records/s")
    print(f"  the group's largest backlog meanwhile              : {result['largest_backlog']:>10,.0f} records")
    print(f"  all acknowledged after the last was in Redis       : {result['catch_up_seconds'] * 1000:>10,.0f} ms")
    one, two = result["group_rates"][1], result["group_rates"][2]
    drained = f"{one:,.0f} / {two:,.0f} records/s ({two / one:.2f}x)"
    print(f"  a backlog drained by a group of 1 / 2 processes    : {drained}")
    small, big = (result["tail_seconds"][entries] for entries in sorted(result["tail_seconds"]))
    entries = max(result["tail_seconds"])
    print(
        f"  tail -n 100                    : {small * 1000:.2f} ms on 10,000 entries, {big * 1000:.2f} ms on "
        f"{entries:,} ({result['tail_ratio']:.2f}x, target <= 1.5)"
    )
