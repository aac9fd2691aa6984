"""Latency: what one logging call costs its caller (Redis healthy, then frozen), and how soon a record is in Redis."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import peers
import redis
from common import MESSAGE, new_logger, percentiles

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis


def _time_calls(handler: logging.Handler, calls: int) -> list[int]:
    log = new_logger(handler, "caller")
    durations = []
    clock = time.perf_counter_ns
    for number in range(calls):
        started = clock()
        log.info(MESSAGE, "/api/orders", number)
        durations.append(clock() - started)
    log.removeHandler(handler)
    return durations


def caller_cost(calls: int) -> dict[str, Any]:
    """Latency of one logging call with Redis healthy, and with Redis frozen so the buffer fills."""
    results: dict[str, Any] = {"calls": calls}
    results["floor"] = percentiles(_time_calls(peers.Floor(), calls))
    with EmbeddedRedis() as server:
        healthy = RedisHandler(url=server.url, key="bench:caller")
        results["healthy"] = percentiles(_time_calls(healthy, calls))
        healthy.close()
        frozen = RedisHandler(url=server.url, key="bench:caller:frozen", close_timeout=0.5)
        warm = logging.LogRecord("warm", logging.INFO, __file__, 0, "warm", None, None)
        frozen.handle(warm)
        frozen.flush(5)
        server.pause()
        try:
            # More calls than the buffer holds, so it fills and evicts.
            frozen_calls = max(calls, frozen.settings.buffer_size * 3)
            results["frozen"] = percentiles(_time_calls(frozen, frozen_calls))
            results["frozen"]["calls"] = frozen_calls
            results["frozen"]["stats"] = frozen.stats()
        finally:
            server.resume()
        frozen.close()
    results["frozen_p99_9_over_healthy"] = results["frozen"]["p99_9_us"] / results["healthy"]["p99_9_us"]
    return results


def delivery_latency(url: str, seconds: float, rate: int) -> dict[str, Any]:
    """At a steady *rate* records/s, the time from the logging call until the record is readable in Redis."""
    key = f"bench:latency:{uuid.uuid4().hex}"
    handler = RedisHandler(url=url, key=key)
    log = new_logger(handler, "latency")
    total = int(seconds * rate)
    latencies: list[float] = []
    reader_ready = threading.Event()

    def read() -> None:
        client = redis.Redis.from_url(url)
        last = "0"
        reader_ready.set()
        while len(latencies) < total:
            for _, entries in client.xread({key: last}, block=200, count=1000) or []:
                now = time.time()
                for entry_id, fields in entries:
                    latencies.append(now - json.loads(fields[b"data"])["extra"]["sent"])
                    last = entry_id
        client.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader_ready.wait()
    started = time.perf_counter()
    for number in range(total):
        # A steady rate: each call at its own tick, whatever the previous one cost.
        delay = started + number / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        log.info(MESSAGE, "/api/orders", number, extra={"sent": time.time()})
    reader.join(60)
    log.removeHandler(handler)
    handler.close()
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return {
        "rate": rate,
        "records": len(ordered),
        "flush_interval_ms": handler.settings.flush_interval * 1000,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": ordered[-1] * 1000,
    }
