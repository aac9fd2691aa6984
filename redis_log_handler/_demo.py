"""``redis-log-handler demo``: log from several threads into Redis and summarise what arrived."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import redis

from ._handler import RedisHandler
from ._server import EmbeddedRedis

__all__ = ["run_demo"]

_LEVELS = (logging.DEBUG, logging.INFO, logging.INFO, logging.INFO, logging.WARNING, logging.ERROR)


def _work(log: logging.Logger, worker: int, count: int) -> None:
    for number in range(count):
        level = _LEVELS[number % len(_LEVELS)]
        if number % 997 == 0:
            try:
                raise ValueError(f"order {number} has no items")
            except ValueError:
                log.exception("worker %d failed on order %d", worker, number, extra={"worker": worker})
        else:
            log.log(
                level,
                "worker %d served request %d in %d ms",
                worker,
                number,
                number % 50,
                extra={"worker": worker, "request": number},
            )


def _progress(handler: RedisHandler, done: threading.Event, started: float) -> None:
    interactive = sys.stdout.isatty()
    while not done.wait(0.25 if interactive else 1.0):
        stats = handler.stats()
        line = (
            f"  {time.perf_counter() - started:5.1f}s  accepted {stats['accepted']:>9,}  "
            f"written {stats['written']:>9,}  buffered {stats['buffered']:>7,}  dropped {stats['dropped']:>5,}"
        )
        print(f"\r{line}" if interactive else line, end="" if interactive else "\n", flush=True)
    if interactive:
        print()


def _read_back(url: str, key: str) -> tuple[int, Counter[str], Counter[str]]:
    """Count the documents in the stream by level and by source."""
    connection = redis.Redis.from_url(url)
    levels: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    total = 0
    last = "-"
    while True:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", connection.xrange(key, min=last, count=10_000))
        if last != "-":
            entries = entries[1:]  # the range is inclusive of the last id already counted
        if not entries:
            break
        for entry_id, fields in entries:
            document = json.loads(fields[b"data"])
            levels[document["level"]] += 1
            sources[document["source"]] += 1
            total += 1
            last = entry_id.decode()
    connection.close()
    return total, levels, sources


def run_demo(url: str | None, key: str, threads: int, records: int) -> int:
    """Run the demo; returns the process exit code."""
    server: EmbeddedRedis | None = None
    if url is None:
        server = EmbeddedRedis().start()
        url = server.url
        print(f"Started a throwaway Redis for the demo: {server.binary} on {url}")
    else:
        print(f"Using Redis at {url}")
    try:
        return _log_and_summarise(url, key, threads, records)
    finally:
        if server is not None:
            server.stop()


def _log_and_summarise(url: str, key: str, threads: int, records: int) -> int:
    handler = RedisHandler(url=url, key=key, fields={"service": "demo"})
    log = logging.getLogger("redis_log_handler.demo")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    redis.Redis.from_url(url).delete(key)

    per_thread = max(1, records // threads)
    print(f"Logging {per_thread * threads:,} records from {threads} threads into stream {key!r} ...")
    done = threading.Event()
    started = time.perf_counter()
    reporter = threading.Thread(target=_progress, args=(handler, done, started), daemon=True)
    reporter.start()
    workers = [threading.Thread(target=_work, args=(log, worker, per_thread)) for worker in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    logged = time.perf_counter() - started
    delivered = handler.flush(30)
    elapsed = time.perf_counter() - started
    done.set()
    reporter.join()
    stats = handler.stats()
    log.removeHandler(handler)
    handler.close()

    total, levels, sources = _read_back(url, key)
    _print_summary(stats, total, levels, sources, logged, elapsed, delivered)
    return 0 if delivered and total == stats["written"] else 1


def _print_summary(
    stats: dict[str, Any],
    total: int,
    levels: Counter[str],
    sources: Counter[str],
    logged: float,
    elapsed: float,
    delivered: bool,
) -> None:
    print()
    print("Summary (read back from Redis)")
    print(f"  records in the stream : {total:,}")
    print("  per level             : " + ", ".join(f"{name} {count:,}" for name, count in sorted(levels.items())))
    print("  per source            : " + ", ".join(f"{name} {count:,}" for name, count in sorted(sources.items())))
    print(f"  logging calls         : {stats['accepted']:,} in {logged:.2f}s ({stats['accepted'] / logged:,.0f}/s)")
    print(f"  end to end            : {total / elapsed:,.0f} records/s until all were readable in Redis")
    print(f"  batches               : {stats['batches']:,} (retries {stats['retries']})")
    print(
        f"  dropped               : {stats['dropped']:,} (overflow {stats['dropped_overflow']}, "
        f"closed {stats['dropped_closed']}, error {stats['dropped_error']})"
    )
    print(f"  everything delivered  : {'yes' if delivered else 'NO'}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m redis_log_handler`` and the ``redis-log-handler`` script."""
    parser = argparse.ArgumentParser(prog="redis-log-handler", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="log from several threads into Redis and summarise the result")
    demo.add_argument(
        "--url",
        default=os.environ.get("REDIS_URL"),
        help="Redis URL (default: $REDIS_URL, else start a throwaway server)",
    )
    demo.add_argument("--key", default="redis-log-handler:demo", help="stream key (deleted first)")
    demo.add_argument("--threads", type=int, default=8)
    demo.add_argument("--records", type=int, default=200_000)
    arguments = parser.parse_args(argv)
    return run_demo(arguments.url, arguments.key, arguments.threads, arguments.records)
