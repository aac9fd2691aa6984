"""Redis memory per record, for sizing ``maxmemory``: what docs/retention.md quotes.

Writes N records through a ``RedisHandler`` (defaults, the message of every benchmark, default fields)
into a server of its own, in stream and list mode, and reports the server's ``used_memory`` growth and
``MEMORY USAGE <key> SAMPLES 0`` (every node counted) divided by N. Then, in stream mode, a consumer
with ``retain=0`` reads and acknowledges everything, and the same figures are taken again.

    python benchmarks/memory_per_record.py              # 1,000,000 records
    python benchmarks/memory_per_record.py --records 100000
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any

import redis
from common import MESSAGE, new_logger

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler.testing import EmbeddedRedis


def _used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _measure(url: str, mode: str, records: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    key = f"bench:memory:{mode}"
    before = _used(client)
    handler = RedisHandler(url=url, key=key, mode=mode)
    log = new_logger(handler, "memory")
    for number in range(records):
        log.info(MESSAGE, "/api/orders", number)
    assert handler.flush(300), "not every record was written"
    log.removeHandler(handler)
    handler.close()
    row = {
        "mode": mode,
        "records": records,
        "used_memory_per_record": (_used(client) - before) / records,
        "memory_usage_per_record": int(client.memory_usage(key, samples=0) or 0) / records,
    }
    if mode == "stream":
        row.update(_after_consuming(url, client, key, records))
    client.delete(key)
    client.close()
    return row


def _after_consuming(url: str, client: redis.Redis, key: str, records: int) -> dict[str, Any]:
    """A consumer with retain=0 reads everything; the key's length and memory afterwards."""
    logging.getLogger("bench").propagate = False  # the records re-emitted go nowhere
    consumer = RedisLogConsumer(url=url, key=key, retain=0, block=0.1)
    stopping = threading.Event()
    reader = threading.Thread(target=consumer.run, args=(stopping,))
    reader.start()
    deadline = time.monotonic() + 600
    while consumer.stats()["trimmed"] < records - consumer.settings.batch_size and time.monotonic() < deadline:
        time.sleep(0.1)
    stopping.set()
    reader.join()
    consumer.close()
    return {
        "after_consuming_length": client.xlen(key),
        "after_consuming_memory_usage": int(client.memory_usage(key, samples=0) or 0),
        "trimmed": consumer.stats()["trimmed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    records = parser.parse_args().records
    with EmbeddedRedis() as server:
        info = redis.Redis.from_url(server.url).info("server")
        print(f"{info.get('redis_version')} ({server.binary}), {records:,} records a mode\n")
        print("| mode | used_memory / record | MEMORY USAGE / record | after consuming (retain=0) |")
        print("|---|---|---|---|")
        for mode in ("stream", "list"):
            row = _measure(server.url, mode, records)
            after = (
                f"{row['after_consuming_length']:,} entries, {row['after_consuming_memory_usage']:,} bytes"
                if mode == "stream"
                else "-"
            )
            print(
                f"| {mode} | {row['used_memory_per_record']:.0f} B | {row['memory_usage_per_record']:.0f} B | {after} |"
            )


if __name__ == "__main__":
    main()
