"""Nothing a caller puts in a record's extra fields may cost the record, with either JSON encoder.

Property-based: arbitrary nested values (integers of any size, NaN and infinities, bytes, sets, tuples as
keys, surrogates, objects whose ``__str__`` and ``__repr__`` raise, cycles, deep nesting) are logged through
stdlib ``logging``, Loguru and structlog into one handler on a real server; every record must arrive, with
its value in ``extra``, and none may be counted as dropped. The encoder is switched for the whole test:
the stdlib's ``json``, then ``orjson`` (in the ``test`` extra).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger as loguru_logger

from redis_log_handler import LoguruSink, RedisHandler, StructlogProcessor
from redis_log_handler._shared import json_codec as _json
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream


class Unprintable:
    """An object whose ``__str__`` and ``__repr__`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cycle() -> list[Any]:
    looped: list[Any] = [1]
    looped.append(looped)
    return looped


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


_TEXT = st.text(st.characters(exclude_categories=()), max_size=8)  # surrogates included
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2)
    | st.floats()
    | _TEXT
    | st.binary(max_size=8)
    | st.frozensets(st.integers() | _TEXT, max_size=3)
    | st.sets(st.integers(), max_size=3)
    | st.builds(Unprintable)
    | st.builds(_cycle)
    | st.builds(_deep, st.integers(min_value=10, max_value=200))
)
_KEYS = _TEXT | st.integers() | st.tuples(st.integers(), _TEXT) | st.none()
VALUES = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=3) | st.tuples(children, children) | st.dictionaries(_KEYS, children, max_size=3)  # type: ignore[arg-type]
    ),
    max_leaves=12,
)


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_NESTING = 16  # levels: deeper, a value is written as its text


def _text(value: object) -> str:
    """``str(value)``, or the default ``repr`` where ``str`` raises; lone surrogates as visible ``\\udcxx``."""
    try:
        text = str(value)
    except Exception:
        text = object.__repr__(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def documented(value: object, depth: int = 0) -> Any:
    """What docs/schema.md ("JSON safety") says *value* becomes in a document, written from the docs, not the code."""
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _UINT64_MAX else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if depth >= _NESTING:
        return _text(value)
    if isinstance(value, dict):
        return {_text(name): documented(item, depth + 1) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [documented(item, depth + 1) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return _text(value)


@pytest.fixture
def three_sources(redis_server: EmbeddedRedis, key: str) -> Iterator[tuple[RedisHandler, list[Callable[..., None]]]]:
    """One handler, and a way to log a value as an extra field through each of the three sources."""
    handler = RedisHandler(url=redis_server.url, key=key, buffer_size=100_000, close_timeout=5)
    stdlib = logging.getLogger(f"extra-values.{key}")
    stdlib.propagate = False
    stdlib.addHandler(handler)
    sink = loguru_logger.add(LoguruSink(handler), level="INFO")
    structlog.configure(
        processors=[structlog.processors.add_log_level, StructlogProcessor(handler, drop=True)],
        cache_logger_on_first_use=False,
    )
    loggers: list[Callable[..., None]] = [
        lambda number, value: stdlib.warning("value %d", number, extra={"v": value}),
        lambda number, value: loguru_logger.bind(v=value).warning("value {}", number),
        lambda number, value: structlog.get_logger().warning(f"value {number}", v=value),
    ]
    yield handler, loggers
    loguru_logger.remove(sink)
    structlog.reset_defaults()
    stdlib.removeHandler(handler)
    handler.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(VALUES, min_size=1, max_size=4))
def test_any_extra_value_is_written(
    values: list[Any],
    json_backend: str,
    three_sources: tuple[RedisHandler, list[Callable[..., None]]],
    client: redis.Redis,
    key: str,
) -> None:
    """Each value, logged through each source, arrives with an ``extra`` field ``v`` holding exactly what
    docs/schema.md says that value becomes; nothing is dropped."""
    handler, loggers = three_sources
    client.delete(key)
    for number, value in enumerate(values):
        for log in loggers:
            log(number, value)
    assert handler.flush(10)
    stats = handler.stats()
    assert stats["dropped"] == 0, stats
    assert stats["errors"] == 0, stats
    documents = read_stream(client, key)
    assert len(documents) == 3 * len(values)
    assert {document["source"] for document in documents} == {"stdlib", "loguru", "structlog"}
    for document in documents:
        value = values[int(document["message"].split()[1])]
        assert document["extra"]["v"] == documented(value), (document["source"], value)


def test_big_integers_are_written_as_decimal_text(json_backend: str) -> None:
    """An integer outside 64 bits becomes its decimal string with either encoder; one inside stays a number."""
    safe = _json.json_safe({"big": 2**64, "small": -(2**63) - 1, "edge": 2**64 - 1, "low": -(2**63)})
    assert _json.loads(_json.dumps(safe)) == {
        "big": "18446744073709551616",
        "small": "-9223372036854775809",
        "edge": 2**64 - 1,
        "low": -(2**63),
    }
