"""Shared fixtures: real redis-server processes on free loopback ports, never the machine's default server."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler._shared import diagnostics as _diagnostics
from redis_log_handler._writer import intake as _intake
from redis_log_handler.testing import EmbeddedRedis


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll *predicate* until it returns a truthy value; fail the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def connection_over(sock: Any, *, tls: bool = False) -> Any:
    """A stand-in for a redis-py asyncio connection whose transport carries *sock* (TLS if *tls*)."""
    extra = {"socket": sock, "sslcontext": object() if tls else None}
    return SimpleNamespace(_writer=SimpleNamespace(transport=SimpleNamespace(get_extra_info=extra.get)))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One server for the tests that do not disturb it (each test uses its own keys)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def own_server() -> Iterator[EmbeddedRedis]:
    """A server of the test's own, which it may kill, freeze and restart."""
    server = EmbeddedRedis("--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A plain synchronous client on the session server."""
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


@pytest.fixture
def key() -> str:
    """A key no other test uses."""
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def make_handler() -> Iterator[Callable[..., RedisHandler]]:
    """Build handlers that are closed (quickly) when the test ends."""
    handlers: list[RedisHandler] = []

    def make(**kwargs: Any) -> RedisHandler:
        kwargs.setdefault("close_timeout", 2.0)
        handler = RedisHandler(**kwargs)
        handlers.append(handler)
        return handler

    yield make
    for handler in handlers:
        handler.close()


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A non-propagating DEBUG logger of the test's own; its handlers are removed afterwards."""
    log = logging.getLogger(f"tests.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


@pytest.fixture
def step_aside_decisions(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each logging call's decision whether to step aside for the writer, recorded instead of waiting."""
    decisions: list[bool] = []
    monkeypatch.setattr(_intake, "step_aside", lambda needed, timeout: decisions.append(needed()))
    return decisions


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> None:
    """Each test sees the handler's first stderr report of each kind (the limiter is process-wide)."""
    _diagnostics._last.clear()


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
