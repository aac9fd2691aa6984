"""Metrics over every live RedisHandler's ``stats()``, for Prometheus and OpenTelemetry.

Both read ``stats()`` when they are collected (a scrape, an export): the
logging call pays nothing. Handlers writing to the same key in the same mode
are summed into one series (labels never come from records). The libraries
are imported only by the function that needs them: ``prometheus_client``
(extra ``prometheus``) and ``opentelemetry-api`` (extra ``otel``).

Prometheus, every series labelled ``key`` and ``mode``:

- ``redis_log_handler_records_total{outcome="written"}`` and
  ``{outcome="dropped", reason="overflow"|"error"|"closed"|"internal"}``;
- ``redis_log_handler_accepted_records_total{source="stdlib"|"loguru"|"structlog"}``;
- ``redis_log_handler_retries_total``, ``redis_log_handler_errors_total``;
- gauges ``redis_log_handler_buffered_records``, ``redis_log_handler_spill_bytes``,
  ``redis_log_handler_connected`` (1 when every such handler is connected),
  ``redis_log_handler_oldest_buffered_age_seconds``.

OpenTelemetry, following the SDK's own processor metrics (unit ``{log_record}``,
attributes ``otel.component.type="redis_log_handler"`` and
``otel.component.name="<mode>:<key>"``):

- ``otel.sdk.processor.log.processed``: written records, and dropped ones with
  ``error.type`` ``queue_full`` (overflow), ``already_shutdown`` (closed),
  ``redis_error`` or ``internal``;
- ``otel.sdk.processor.log.queue.size`` and ``otel.sdk.processor.log.queue.capacity``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._schema.sources import SOURCES
from ._writer.live import live_handlers

__all__ = ["register_opentelemetry", "register_prometheus"]

_DROP_REASONS = {"overflow": "queue_full", "error": "redis_error", "closed": "already_shutdown", "internal": "internal"}
_SUMMED = (
    "written", *(f"accepted_{source}" for source in SOURCES), "retries", "errors", "buffered",
    "spill_bytes", *(f"dropped_{reason}" for reason in _DROP_REASONS),
)  # fmt: skip


def _by_destination() -> dict[tuple[str, str], dict[str, Any]]:
    """Every live handler's stats, summed per (key, mode); ``connected`` is all(), the oldest age is max()."""
    totals: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {**dict.fromkeys(_SUMMED, 0), "connected": True, "oldest_buffered_age": 0.0, "capacity": 0}
    )
    for handler in live_handlers():
        stats = handler.stats()
        total = totals[(handler.settings.key, handler.settings.mode)]
        for name in _SUMMED:
            total[name] += stats[name]
        total["connected"] = total["connected"] and bool(stats["connected"])
        total["oldest_buffered_age"] = max(total["oldest_buffered_age"], stats["oldest_buffered_age"] or 0.0)
        total["capacity"] += handler.settings.buffer_size
    return totals


class _PrometheusCollector:
    """A ``prometheus_client`` custom collector: families built from ``stats()`` on each scrape."""

    def describe(self) -> list[Any]:
        return []  # no fixed families: registering does not collect

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415 - optional

        labels = ["key", "mode"]
        records = CounterMetricFamily(
            "redis_log_handler_records", "Records written, or dropped by reason", labels=[*labels, "outcome", "reason"]
        )
        accepted = CounterMetricFamily(
            "redis_log_handler_accepted_records", "Records accepted, by source", labels=[*labels, "source"]
        )
        retries = CounterMetricFamily("redis_log_handler_retries", "Batches retried", labels=labels)
        errors = CounterMetricFamily("redis_log_handler_errors", "Write and handler errors", labels=labels)
        buffered = GaugeMetricFamily("redis_log_handler_buffered_records", "Records not yet written", labels=labels)
        spill = GaugeMetricFamily("redis_log_handler_spill_bytes", "Bytes in the disk spill", labels=labels)
        connected = GaugeMetricFamily("redis_log_handler_connected", "1 when connected to Redis", labels=labels)
        age = GaugeMetricFamily(
            "redis_log_handler_oldest_buffered_age_seconds", "Age of the oldest record not yet written", labels=labels
        )
        for (key, mode), total in _by_destination().items():
            records.add_metric([key, mode, "written", ""], total["written"])
            for reason in _DROP_REASONS:
                records.add_metric([key, mode, "dropped", reason], total[f"dropped_{reason}"])
            for source in SOURCES:
                accepted.add_metric([key, mode, source], total[f"accepted_{source}"])
            retries.add_metric([key, mode], total["retries"])
            errors.add_metric([key, mode], total["errors"])
            buffered.add_metric([key, mode], total["buffered"])
            spill.add_metric([key, mode], total["spill_bytes"])
            connected.add_metric([key, mode], 1.0 if total["connected"] else 0.0)
            age.add_metric([key, mode], total["oldest_buffered_age"])
        yield from (records, accepted, retries, errors, buffered, spill, connected, age)


def register_prometheus(registry: Any = None) -> Any:
    """Register a collector over every live handler with *registry* (default: ``prometheus_client.REGISTRY``).

    Returns the collector (``registry.unregister(collector)`` removes it).
    """
    from prometheus_client import REGISTRY  # noqa: PLC0415 - optional

    collector = _PrometheusCollector()
    (registry or REGISTRY).register(collector)
    return collector


Measure = Callable[[dict[str, Any]], Iterable[tuple[float, dict[str, str]]]]


def _processed(total: dict[str, Any]) -> Iterator[tuple[float, dict[str, str]]]:
    yield total["written"], {}
    for reason, error_type in _DROP_REASONS.items():
        yield total[f"dropped_{reason}"], {"error.type": error_type}


def _queue_size(total: dict[str, Any]) -> Iterator[tuple[float, dict[str, str]]]:
    yield total["buffered"], {}


def _queue_capacity(total: dict[str, Any]) -> Iterator[tuple[float, dict[str, str]]]:
    yield total["capacity"], {}


def _callback(measure: Measure) -> Callable[[Any], list[Any]]:
    """An observable instrument's callback: *measure* gives (value, attributes) for each destination's totals."""
    from opentelemetry.metrics import Observation  # noqa: PLC0415 - optional

    def observe(_options: Any) -> list[Any]:
        observations = []
        for (key, mode), total in _by_destination().items():
            component = {"otel.component.type": "redis_log_handler", "otel.component.name": f"{mode}:{key}"}
            observations += [Observation(value, {**component, **extra}) for value, extra in measure(total)]
        return observations

    return observe


def register_opentelemetry(meter_provider: Any = None) -> None:
    """Create observable instruments over every live handler on *meter_provider* (default: the global one)."""
    from opentelemetry import metrics  # noqa: PLC0415 - optional

    from . import __version__  # noqa: PLC0415 - the package imports this module's callers, not the reverse

    provider = meter_provider or metrics.get_meter_provider()
    meter = provider.get_meter("redis_log_handler", __version__)
    unit = "{log_record}"
    meter.create_observable_counter(
        "otel.sdk.processor.log.processed",
        callbacks=[_callback(_processed)],
        unit=unit,
        description="Records written to Redis, or dropped (error.type says why)",
    )
    meter.create_observable_up_down_counter(
        "otel.sdk.processor.log.queue.size",
        callbacks=[_callback(_queue_size)],
        unit=unit,
        description="Records accepted and not yet written (memory, in flight, on disk)",
    )
    meter.create_observable_up_down_counter(
        "otel.sdk.processor.log.queue.capacity",
        callbacks=[_callback(_queue_capacity)],
        unit=unit,
        description="The memory buffer's capacity (buffer_size)",
    )
