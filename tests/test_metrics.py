"""Metrics: Prometheus and OpenTelemetry views of every live handler's stats(), collected on scrape."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from redis_log_handler import RedisHandler
from redis_log_handler.metrics import register_opentelemetry, register_prometheus
from redis_log_handler.testing import EmbeddedRedis, _free_port

prometheus_client = pytest.importorskip("prometheus_client")
metrics_sdk = pytest.importorskip("opentelemetry.sdk.metrics")
export = pytest.importorskip("opentelemetry.sdk.metrics.export")


def log_to(handler: RedisHandler, count: int, name: str) -> None:
    """Log *count* records through *handler* only."""
    log = logging.getLogger(name)
    log.propagate = False
    log.addHandler(handler)
    for number in range(count):
        log.warning("%d", number)
    log.removeHandler(handler)


@pytest.fixture
def written_and_dropped(
    redis_server: EmbeddedRedis, key: str, make_handler: Callable[..., RedisHandler], request: pytest.FixtureRequest
) -> tuple[str, RedisHandler]:
    """Two handlers on one key (300 and 200 records written), and one on a dead server that dropped some of 50."""
    for count in (300, 200):
        handler = make_handler(url=redis_server.url, key=key)
        log_to(handler, count, f"metrics.{request.node.name}.{count}")
        assert handler.flush(10)
    unreachable = f"{key}:down"
    dead = make_handler(url=f"redis://127.0.0.1:{_free_port()}/0", key=unreachable, buffer_size=10, mode="list")
    log_to(dead, 50, f"metrics.{request.node.name}.dead")
    assert dead.stats()["dropped_overflow"] > 0  # stable from here: no more records, the server stays down
    return key, dead


def test_prometheus(written_and_dropped: tuple[str, RedisHandler]) -> None:
    """Counters and gauges per (key, mode), summed over the handlers that share them."""
    key, dead = written_and_dropped
    unreachable, stats = dead.settings.key, dead.stats()
    registry = prometheus_client.CollectorRegistry()
    register_prometheus(registry)

    def value(name: str, **labels: str) -> Any:
        return registry.get_sample_value(name, labels)

    assert value("redis_log_handler_records_total", key=key, mode="stream", outcome="written", reason="") == 500
    assert value("redis_log_handler_accepted_records_total", key=key, mode="stream", source="stdlib") == 500
    assert value("redis_log_handler_connected", key=key, mode="stream") == 1
    assert value("redis_log_handler_buffered_records", key=key, mode="stream") == 0
    down = {"key": unreachable, "mode": "list"}
    assert (
        value("redis_log_handler_records_total", **down, outcome="dropped", reason="overflow")
        == (stats["dropped_overflow"])
    )
    assert value("redis_log_handler_buffered_records", **down) == stats["buffered"] == 50 - stats["dropped"]
    assert value("redis_log_handler_connected", **down) == 0
    assert value("redis_log_handler_oldest_buffered_age_seconds", **down) > 0
    assert "redis_log_handler_records_total" in prometheus_client.generate_latest(registry).decode()


def test_opentelemetry(written_and_dropped: tuple[str, RedisHandler]) -> None:
    """The SDK processor's metric names, with error.type on drops, unit {log_record}."""
    key, dead = written_and_dropped
    unreachable, stats = dead.settings.key, dead.stats()
    reader = export.InMemoryMetricReader()
    register_opentelemetry(metrics_sdk.MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    points: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                assert metric.unit == "{log_record}"
                for point in metric.data.data_points:
                    points[(metric.name, frozenset(point.attributes.items()))] = point.value

    def value(name: str, destination: str, **attributes: str) -> Any:
        component = {"otel.component.type": "redis_log_handler", "otel.component.name": destination}
        return points[(name, frozenset({**component, **attributes}.items()))]

    assert value("otel.sdk.processor.log.processed", f"stream:{key}") == 500
    dropped = value("otel.sdk.processor.log.processed", f"list:{unreachable}", **{"error.type": "queue_full"})
    assert dropped == stats["dropped_overflow"]
    assert value("otel.sdk.processor.log.queue.size", f"list:{unreachable}") == stats["buffered"]
    assert value("otel.sdk.processor.log.queue.capacity", f"list:{unreachable}") == 10
