"""The demo command: log from several threads through three frameworks into one stream, and summarise what arrived."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import redis
import redis.exceptions

from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.diagnostics import describe
from redis_log_handler._writer.handler import RedisHandler
from redis_log_handler._writer.loguru_sink import LoguruSink
from redis_log_handler._writer.structlog_processor import StructlogProcessor
from redis_log_handler.testing import EmbeddedRedis

from .common import CommandError, UsageError, command_to_paste, connect
from .tail import print_last

__all__ = ["DEMO_DESCRIPTION", "MAX_THREADS", "run_demo"]

DEMO_DESCRIPTION = (
    "Log records from several threads through stdlib logging, Loguru and structlog (those installed) into one "
    "Redis stream with one RedisHandler, wait until all are written, and summarise what the stream holds."
)
MAX_THREADS = 1000
# Every demo document carries this static field: it is how the demo recognises an earlier demo's stream.
_DEMO_FIELDS = {"service": "redis-log-handler-demo"}
_TAIL_LINES = 5  # records shown at the end, through tail
_KEY_TTL = 3600  # seconds: the demo's stream expires an hour after its last write
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # each ends demo --keep
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
    # Loguru names a record after the calling module (a private one here): the demo's logger name instead.
    loguru = frameworks.loguru.bind(worker=worker, logger_name=stdlib.name) if frameworks.loguru is not None else None
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
        # Not stats["buffered"]: mid-burst it misses the records inside a logging call at that instant, and a
        # line that does not add up reads as loss. Everything accepted is written, dropped, or still on its way.
        on_its_way = stats["accepted"] - stats["written"] - stats["dropped"]
        line = (
            f"  {time.perf_counter() - started:5.1f}s  accepted {stats['accepted']:>9,}  "
            f"written {stats['written']:>9,}  on its way {on_its_way:>7,}  dropped {stats['dropped']:>5,}"
        )
        print(f"\r{line}" if interactive else line, end="" if interactive else "\n", flush=True)
    if interactive:
        print()


def _read_back(client: redis.Redis, key: str) -> tuple[int, Counter[str], Counter[str]]:
    """Count the documents in the stream by level and by source."""
    levels: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    total = 0
    for document in _documents(client, key):
        levels[document["level"]] += 1
        sources[document["source"]] += 1
        total += 1
    return total, levels, sources


def _documents(client: redis.Redis, key: str) -> Iterator[dict[str, Any]]:
    """Every document in the stream *key*, oldest first, read in chunks; an entry that is not one yields {}."""
    start = "-"
    while True:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(key, min=start, count=10_000))
        if not entries:
            return
        for _, fields in entries:
            try:
                document = json.loads(fields[b"data"]) if set(fields) == {b"data"} else {}
            except ValueError:
                document = {}
            yield document if isinstance(document, dict) else {}
        start = "(" + entries[-1][0].decode()


def _choose_key(client: redis.Redis, key: str | None) -> str:
    """A new key, or *key* once it is known to be new or to hold only an earlier demo's records (then emptied)."""
    if key is None:
        return f"redis-log-handler:demo:{secrets.token_hex(4)}"
    if client.exists(key):
        earlier_demo = client.type(key) == b"stream" and all(
            document.get("service") == _DEMO_FIELDS["service"] for document in _documents(client, key)
        )
        if not earlier_demo:
            raise UsageError(
                f"--key {key!r} already holds data the demo did not write; name a new key or leave --key out"
            )
        client.delete(key)
    return key


def _server_name(client: redis.Redis) -> str:
    """``Redis 7.0.15`` or ``Valkey 9.1.2``: the server's own name and version."""
    info = client.info("server")
    if "valkey_version" in info:
        return f"Valkey {info['valkey_version']}"
    return f"{str(info.get('server_name') or 'redis').capitalize()} {info.get('redis_version', '')}".strip()


def run_demo(url: str | None, key: str | None, threads: int, records: int, *, keep: bool = False) -> int:
    """Run the demo; returns the exit status (0: every record arrived).

    *url* None: a throwaway server, stopped at the end unless *keep* (then at Ctrl-C).
    """
    server: EmbeddedRedis | None = None
    if url is None:
        try:
            server = EmbeddedRedis().start()
        except RuntimeError as exc:
            raise CommandError(f"cannot start a throwaway server for the demo: {exc}") from None
        url = server.url
    try:
        client = connect(url)
        try:
            name = _server_name(client)
            if server is not None:
                print(f"Started a throwaway {name} server for the demo: {server.binary} on {url}")
            else:
                print(f"Using {name} at {redact_url(url)}")
            key = _choose_key(client, key)
            status = _log_and_summarise(client, url, key, threads, records)
        except redis.exceptions.RedisError as exc:
            raise CommandError(f"Redis at {redact_url(url)} failed during the demo ({describe(exc)})") from None
        finally:
            client.close()
        print()
        next_step = _next_step(url, key, throwaway=server is not None, keep=keep)
        if server is not None and keep:
            _wait_for_ctrl_c(next_step)
        else:
            print(next_step)
        return status
    finally:
        if server is not None:
            server.stop()


def _next_step(url: str, key: str, *, throwaway: bool, keep: bool) -> str:
    """What to run next, as a command that works when pasted (or why there is none)."""
    if throwaway and not keep:
        return (
            f"The throwaway server is stopped now, and its records with it. Run '{command_to_paste('demo', '--keep')}' "
            "to keep it until Ctrl-C and look around with tail, or give the demo --url for your own Redis."
        )
    # $REDIS_URL reaches tail too; a URL given with --url is repeated, its password hidden
    from_environment = not throwaway and url == os.environ.get("REDIS_URL")
    option = [] if from_environment else ["--url", redact_url(url)]
    command = command_to_paste("tail", *option, "--key", key, "-n", "20", "-f")
    if redact_url(url) != url and not from_environment:
        command += "   (your password in place of ***)"
    if throwaway:
        return f"The throwaway server keeps running until Ctrl-C. In another terminal:\n  {command}"
    return f"The records stay in the stream for an hour. To follow it:\n  {command}"


class _Stopped(Exception):
    """Raised in the main thread by a stop signal's handler, to end the wait."""


def _wait_for_ctrl_c(next_step: str) -> None:
    """Show *next_step*, then wait until Ctrl-C, SIGTERM (``kill``) or SIGHUP (the terminal closed): each ends
    the wait, and the caller stops the throwaway server. The handlers are set before anything of *next_step*
    shows (through a pipe, part of it may go out as soon as the buffer fills): a signal sent as soon as it
    shows finds them in place. Set here, not inherited: a shell that starts the demo in the background has
    Python ignore SIGINT, and nohup SIGHUP.

    The handler raises (as Ctrl-C's KeyboardInterrupt does) rather than setting an event: a handler that takes
    a lock can deadlock on the lock the main thread held when the signal came (``Event.wait`` holds its
    condition's lock for a few steps), and the demo then waited for ever.
    """
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if not stopping:  # a second signal while the first one ends the wait changes nothing
            stopping = True
            raise _Stopped

    previous: dict[signal.Signals, Any] = {}
    try:
        for number in _STOP_SIGNALS:
            previous[number] = signal.signal(number, stop)
        print(next_step, flush=True)
        while True:
            time.sleep(3600)
    except _Stopped:
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    print()


def _shares(records: int, threads: int) -> list[int]:
    """*records* split over at most *threads* threads, as evenly as possible, none empty."""
    threads = min(threads, records)
    return [records // threads + (1 if index < records % threads else 0) for index in range(threads)]


def _log_and_summarise(client: redis.Redis, url: str, key: str, threads: int, records: int) -> int:
    handler = RedisHandler(url=url, key=key, fields=_DEMO_FIELDS, ttl=_KEY_TTL)
    frameworks = _Frameworks(handler)
    shares = _shares(records, threads)
    print(
        f"Logging {records:,} records from {len(shares)} threads through {', '.join(frameworks.names)} "
        f"into stream {key!r} ..."
    )
    done = threading.Event()
    started = time.perf_counter()
    reporter = threading.Thread(target=_progress, args=(handler, done, started), daemon=True)
    reporter.start()
    workers = [threading.Thread(target=_work, args=(frameworks, worker, share)) for worker, share in enumerate(shares)]
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

    total, levels, sources = _read_back(client, key)
    _print_summary(stats, total, levels, sources, logged, elapsed, delivered)
    print()
    print(f"The last {_TAIL_LINES} records, as tail shows them:")
    print_last(client, key, _TAIL_LINES, sys.stdout)
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
