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
from ._loguru import LoguruSink
from ._server import EmbeddedRedis
from ._structlog import StructlogProcessor

__all__ = ["run_demo"]

_LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR")


class _Frameworks:
    """The loggers the demo writes through: stdlib always, Loguru and structlog when installed."""

    def __init__(self, handler: RedisHandler) -> None:
        self.stdlib = logging.getLogger("redis_log_handler.demo")
        self.stdlib.propagate = False
        self.stdlib.setLevel(logging.DEBUG)
        self.stdlib.addHandler(handler)
        self.loguru: Any = None
        self.structlog: Any = None
        self._loguru_sink: int | None = None
        try:
            from loguru import logger  # noqa: PLC0415 - optional (the demo extra brings it)
        except ImportError:
            pass
        else:
            logger.remove()  # the demo shows its own progress instead of Loguru's stderr output
            self._loguru_sink = logger.add(LoguruSink(handler), level="DEBUG")
            self.loguru = logger
        try:
            import structlog  # noqa: PLC0415 - optional (the demo extra brings it)
        except ImportError:
            pass
        else:
            structlog.configure(
                processors=[
                    structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"),
                    StructlogProcessor(handler, drop=True),  # to Redis only, not rendered
                ],
                cache_logger_on_first_use=True,
            )
            self.structlog = structlog

    @property
    def names(self) -> list[str]:
        """The frameworks in use."""
        return ["stdlib"] + [name for name in ("loguru", "structlog") if getattr(self, name) is not None]

    def detach(self, handler: RedisHandler) -> None:
        """Stop sending to *handler*."""
        self.stdlib.removeHandler(handler)
        if self.loguru is not None and self._loguru_sink is not None:
            self.loguru.remove(self._loguru_sink)


def _work(frameworks: _Frameworks, worker: int, count: int) -> None:
    """Log *count* records, taking turns through each framework, with an exception now and then."""
    stdlib = frameworks.stdlib
    loguru = frameworks.loguru.bind(worker=worker) if frameworks.loguru is not None else None
    struct = (
        frameworks.structlog.get_logger().bind(logger="demo.struct", worker=worker) if frameworks.structlog else None
    )
    turns = len(frameworks.names)
    for number in range(count):
        level = _LEVELS[number % len(_LEVELS)]
        turn = number % turns
        if number % 997 == 0:
            try:
                raise ValueError(f"order {number} has no items")
            except ValueError:
                stdlib.exception("worker %d failed on order %d", worker, number, extra={"worker": worker})
        elif turn == 0:
            stdlib.log(
                logging.getLevelName(level),
                "worker %d served request %d in %d ms",
                worker,
                number,
                number % 50,
                extra={"worker": worker, "request": number},
            )
        elif turn == 1 and loguru is not None:
            loguru.log(level, "worker {} served request {} in {} ms", worker, number, number % 50, request=number)
        elif struct is not None:
            getattr(struct, level.lower())("request served", request=number, ms=number % 50)


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
    frameworks = _Frameworks(handler)
    redis.Redis.from_url(url).delete(key)

    per_thread = max(1, records // threads)
    print(
        f"Logging {per_thread * threads:,} records from {threads} threads through {', '.join(frameworks.names)} "
        f"into stream {key!r} ..."
    )
    done = threading.Event()
    started = time.perf_counter()
    reporter = threading.Thread(target=_progress, args=(handler, done, started), daemon=True)
    reporter.start()
    workers = [threading.Thread(target=_work, args=(frameworks, worker, per_thread)) for worker in range(threads)]
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
    frameworks.detach(handler)
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
    demo.add_argument("--records", type=int, default=100_000)
    arguments = parser.parse_args(argv)
    return run_demo(arguments.url, arguments.key, arguments.threads, arguments.records)
