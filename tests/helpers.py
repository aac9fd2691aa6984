"""What tests share besides fixtures: waiting on a condition, numbered records, reading a key, stalls, failovers.

The stall and failover helpers serve tests that promise a logging call never waits on Redis, and that
logging goes on through a failover. Waits are on a condition with a deadline (``wait_until``), never a
sleep. No helper compares a duration with a number picked to fit this machine: a test shows that callers
did not wait by finishing its logging *before* a deliberate wait (a freeze of the server) was over, and
that logging overlapped a failover by counting the records each thread logged while it was under way.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, Self

import redis

from redis_log_handler.testing import EmbeddedRedis


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll *predicate* until it returns a truthy value; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:  # an assertion: a promise (that it happens in time) was broken
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether process *pid* runs (a zombie nobody reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def connection_over(sock: Any, *, tls: bool = False) -> Any:
    """A stand-in for a redis-py asyncio connection whose transport carries *sock* (TLS if *tls*)."""
    extra = {"socket": sock, "sslcontext": object() if tls else None}
    return SimpleNamespace(_writer=SimpleNamespace(transport=SimpleNamespace(get_extra_info=extra.get)))


def log_through(handler: logging.Handler, count: int) -> None:
    """Log *count* records numbered from 0 (the message is the number) through *handler* only."""
    log = logging.getLogger(f"through.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    for number in range(count):
        log.info("%d", number)
    log.removeHandler(handler)


def read_stream(connection: redis.Redis, key: str) -> list[dict[str, Any]]:
    """Every document in the stream *key*, oldest first."""
    return [json.loads(fields[b"data"]) for _, fields in connection.xrange(key)]


def read_list(connection: redis.Redis, key: str) -> list[dict[str, Any]]:
    """Every document in the list *key*, oldest first."""
    return [json.loads(item) for item in connection.lrange(key, 0, -1)]


FREEZE_SECONDS = 3.0


class Freeze:
    """SIGSTOP *server* on entry and SIGCONT it after *seconds*, or on exit if that comes first.

    ``over`` says whether the time ran out. A logging call that waited on the frozen server would have
    waited until then, so a burst that ends with ``over`` still false proves that no call waited.
    """

    def __init__(self, server: EmbeddedRedis, seconds: float = FREEZE_SECONDS) -> None:
        self._server = server
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._end)

    @property
    def over(self) -> bool:
        """Whether the server has been resumed."""
        return self._ended.is_set()

    def _end(self) -> None:
        with self._lock:
            if not self._ended.is_set():
                self._server.resume()
                self._ended.set()

    def __enter__(self) -> Self:
        self._server.pause()
        self._timer.start()
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._timer.cancel()
        self._end()


class PacedProducers:
    """Threads that each log "t<thread> <n>" until stopped, two records and a millisecond's pause at a time.

    Paced on purpose, and only so that logging overlaps a failover: a failover takes seconds, and
    unpaced producers either finish before it starts or fill any buffer while it lasts (the load tests
    cover unpaced producers).
    """

    def __init__(self, logger: logging.Logger, threads: int = 4) -> None:
        self._logger = logger
        self._counts = [0] * threads
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, args=(thread,)) for thread in range(threads)]

    def _work(self, thread: int) -> None:
        while not self._stop.is_set():
            for _ in range(2):
                self._logger.info("t%d %d", thread, self._counts[thread])
                self._counts[thread] += 1
            time.sleep(0.001)

    def start(self) -> Self:
        for worker in self._workers:
            worker.start()
        return self

    def counts(self) -> list[int]:
        """How many records each thread has logged so far."""
        return list(self._counts)

    def stop(self) -> list[str]:
        """Stop and join the threads; every message they logged."""
        self._stop.set()
        for worker in self._workers:
            worker.join()
        return [f"t{thread} {number}" for thread, count in enumerate(self._counts) for number in range(count)]


# Records each thread must log between the start of a failover and its end (about 1,800 a second are
# paced; a failover takes a second or more): a caller that waited on Redis would log none.
LOGGED_DURING_FAILOVER = 200


def log_through_change(
    logger: logging.Logger,
    handler: logging.Handler,
    change: Callable[[], None],
    changed: Callable[[], Any],
    threads: int = 4,
) -> tuple[list[str], list[int]]:
    """Paced producers log while *change* runs and until *changed* holds, then 1,000 records more each.

    *change* starts once the handler has written 2,000 records. Returns every message logged and how
    many each thread logged between the start of *change* and the moment *changed* held.
    """
    producers = PacedProducers(logger, threads).start()
    try:
        wait_until(lambda: handler.stats()["written"] >= 2_000, timeout=30)  # type: ignore[attr-defined]
        before = producers.counts()
        change()
        wait_until(changed, timeout=60)
        during = producers.counts()
        wait_until(
            lambda: min(now - then for now, then in zip(producers.counts(), during, strict=True)) >= 1_000, timeout=30
        )
    finally:
        messages = producers.stop()
    return messages, [then - start for then, start in zip(during, before, strict=True)]


def shell_environment() -> dict[str, str]:
    """The environment of a shell after the README's install: the virtual environment is not activated (its bin
    directory is not on PATH), and no $REDIS_URL."""
    bin_directory = str(Path(sys.executable).parent)
    path = os.pathsep.join(entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != bin_directory)
    environment = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "VIRTUAL_ENV")}
    return {**environment, "PATH": path}


def paste(command: str) -> subprocess.CompletedProcess[str]:
    """*command* pasted into a shell in this directory, as after the README's install (:func:`shell_environment`)."""
    return subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=300, check=False, env=shell_environment()
    )
