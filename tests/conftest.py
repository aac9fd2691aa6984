"""Shared fixtures: real redis-server processes on free loopback ports, never the machine's default server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler._shared import diagnostics as _diagnostics
from redis_log_handler._shared import json_codec as _json
from redis_log_handler._writer import intake as _intake
from redis_log_handler.testing import EmbeddedRedis


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


@pytest.fixture(params=["json", "orjson"])
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every document of the test goes through one JSON back-end: the stdlib's, then orjson (the test extra has it:
    a plain install without the fast extra uses the stdlib's)."""
    if request.param == "orjson":
        import orjson  # noqa: PLC0415

        monkeypatch.setattr(_json, "_dumps", orjson.dumps)
    else:
        import json  # noqa: PLC0415

        stdlib = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        monkeypatch.setattr(_json, "_dumps", lambda obj: stdlib.encode(obj).encode("utf-8"))
    return str(request.param)
