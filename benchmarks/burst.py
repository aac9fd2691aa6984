"""Bursts: records/s end to end, every thread logging as fast as it can, against floors measured in the same run.

The floor is stdlib's dispatch plus building and encoding the same document and
discarding it (``peers.Floor``): what no handler that writes this document can
beat. RedisHandler (stream and list mode) and the peers are measured against
the floor of the same repetition; the adapters against their framework's own
floors.
"""

from __future__ import annotations

import logging
import statistics
import uuid
from collections.abc import Callable
from typing import Any

import peers
import redis
from common import MESSAGE, new_logger, progress, run_threads

from redis_log_handler import RedisHandler

Factory = Callable[[str], "tuple[logging.Handler, Callable[[], None]] | None"]


def _threaded_rate(threads: int, records: int, log_one: Callable[[int], None], finish: Callable[[], None]) -> float:
    per_thread = records // threads

    def work(_thread: int) -> None:
        for number in range(per_thread):
            log_one(number)

    return per_thread * threads / run_threads(threads, work, finish)


def _run_once(factory: Factory, threads: int, records: int) -> float | None:
    """Log *records* from *threads* threads through one fresh handler; records/s until all arrived."""
    key = f"bench:{uuid.uuid4().hex}"
    made = factory(key)
    if made is None:
        return None
    handler, finish = made
    log = new_logger(handler, "throughput")
    rate = _threaded_rate(threads, records, lambda number: log.info(MESSAGE, "/api/orders", number), finish)
    log.removeHandler(handler)
    handler.close()
    return rate


def redis_handler(url: str, mode: str) -> Factory:
    """RedisHandler in *mode*, finished once ``flush()`` says every record is in Redis."""

    def make(key: str) -> tuple[logging.Handler, Callable[[], None]]:
        handler = RedisHandler(url=url, key=key, mode=mode)

        def finish() -> None:
            if not handler.flush(300):
                raise RuntimeError(f"RedisHandler ({mode}) did not deliver: {handler.stats()}")

        return handler, finish

    return make


def _discarding(handler_class: type[logging.Handler]) -> Factory:
    return lambda _key: (handler_class(), lambda: None)


def _count_in_redis(client: redis.Redis, key: str) -> int:
    kind = client.type(key)
    return int(client.xlen(key) if kind == b"stream" else client.llen(key))


def throughput(url: str, records: int, thread_counts: list[int], reps: int, peer_reps: int) -> list[dict[str, Any]]:
    """Median records/s of each design at each thread count, with its ratio to the floor."""
    designs: list[tuple[str, Factory, bool]] = [
        ("floor: build the document, discard it, no lock", _discarding(peers.Floor), True),
        ("floor with Handler.lock", _discarding(peers.LockedFloor), True),
        ("RedisHandler, stream", redis_handler(url, "stream"), True),
        ("RedisHandler, list", redis_handler(url, "list"), True),
        ("stdlib QueueHandler + QueueListener (discards)", lambda _key: peers.queue_listener(), False),
        ("sync RPUSH per record in emit", lambda key: peers.sync_rpush(url, key), False),
        ("run_coroutine_threadsafe + XADD per record", lambda key: peers.coroutine_per_record(url, key), False),
        ("redis-logs RedisStreamLogHandler(batch_size=100)", lambda key: peers.redis_logs(url, key), False),
        ("python-logstash-async (TCP sink)", lambda _key: peers.logstash_async(records), False),
    ]
    client = redis.Redis.from_url(url)
    for _, factory, _ in designs[:4]:  # warm up: imports, the runtime thread, first connections
        _run_once(factory, 1, min(records, 2_000))
    rows = []
    for threads in thread_counts:
        samples: dict[str, list[float]] = {name: [] for name, _, _ in designs}
        for rep in range(reps):
            # Rotate the order every repetition so no design always runs first (or right after the same one).
            shift = rep % len(designs)
            for name, factory, every_rep in designs[shift:] + designs[:shift]:
                if not every_rep and rep >= peer_reps:
                    continue
                rate = _run_once(factory, threads, records)
                if rate is not None:
                    samples[name].append(rate)
            client.flushdb()  # this script's own server: drop the keys of this round
        floor_samples = samples[designs[0][0]]
        for name, _, _ in designs:
            if samples[name]:
                # Each repetition's rate over the floor's in the same repetition, then the median: pairing
                # runs made seconds apart cancels most of the machine's drift.
                ratios = [rate / floor for rate, floor in zip(samples[name], floor_samples, strict=False)]
                rows.append(
                    {
                        "threads": threads,
                        "design": name,
                        "records_per_s": statistics.median(samples[name]),
                        "ratio_to_floor": statistics.median(ratios),
                        "samples": samples[name],
                    }
                )
            else:
                rows.append(
                    {
                        "threads": threads,
                        "design": name,
                        "records_per_s": None,
                        "ratio_to_floor": None,
                        "samples": [],
                        "note": "not installed",
                    }
                )
        progress(f"throughput at {threads} thread(s) done")
    client.close()
    return rows


def loguru_throughput(records: int, thread_counts: list[int], reps: int) -> list[dict[str, Any]]:
    """Loguru with enqueue=True into a discarding sink (serialize=True builds JSON, like our document)."""
    try:
        from loguru import logger  # noqa: PLC0415 - optional peer
    except ImportError:
        return []
    rows = []
    for threads in thread_counts:
        samples = []
        for _ in range(reps):
            logger.remove()
            sink_id = logger.add(lambda _message: None, enqueue=True, serialize=True, level="INFO")
            rate = _threaded_rate(
                threads,
                records,
                lambda number: logger.info("request {} served in {} ms", "/api/orders", number),
                logger.complete,
            )
            logger.remove(sink_id)
            samples.append(rate)
        rows.append(
            {
                "threads": threads,
                "design": "loguru enqueue=True (discarding sink)",
                "records_per_s": statistics.median(samples),
                "samples": samples,
            }
        )
    return rows


def adapters(url: str, records: int, thread_counts: list[int], reps: int) -> list[dict[str, Any]]:
    """LoguruSink and StructlogProcessor end to end, against each framework into a discarding sink."""
    try:
        import structlog  # noqa: PLC0415 - optional peers
        from loguru import logger  # noqa: PLC0415
    except ImportError:
        return []
    from redis_log_handler import LoguruSink, StructlogProcessor  # noqa: PLC0415
    from redis_log_handler._schema.encoding import DocumentEncoder  # noqa: PLC0415
    from redis_log_handler._schema.sources import loguru_document, structlog_document  # noqa: PLC0415

    encoder = DocumentEncoder({}, 262_144)

    def loguru_run(threads: int, into: str) -> float:
        logger.remove()
        handler = RedisHandler(url=url, key=f"bench:{uuid.uuid4().hex}") if into == "redis" else None
        sinks: dict[str, Any] = {
            "discard": lambda _message: None,
            "document": lambda message: encoder.encode(loguru_document(message.record)),
        }
        logger.add(LoguruSink(handler) if handler else sinks[into], level="INFO")

        def finish() -> None:
            if handler is not None and not handler.flush(300):
                raise RuntimeError("LoguruSink did not deliver")

        rate = _threaded_rate(threads, records, lambda n: logger.info("request {} served in {} ms", "/a", n), finish)
        logger.remove()
        if handler is not None:
            handler.close()
        return rate

    def structlog_run(threads: int, into: str) -> float:
        handler = RedisHandler(url=url, key=f"bench:{uuid.uuid4().hex}") if into == "redis" else None

        def discard(_logger: Any, _name: str, _event: Any) -> Any:
            raise structlog.DropEvent

        def document(_logger: Any, name: str, event: Any) -> Any:
            encoder.encode(structlog_document(event, name))
            raise structlog.DropEvent

        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                StructlogProcessor(handler, drop=True) if handler else {"discard": discard, "document": document}[into],
            ],
            cache_logger_on_first_use=True,
        )
        log = structlog.get_logger()

        def finish() -> None:
            if handler is not None and not handler.flush(300):
                raise RuntimeError("StructlogProcessor did not deliver")

        rate = _threaded_rate(threads, records, lambda n: log.info("request served", path="/a", ms=n), finish)
        structlog.reset_defaults()
        if handler is not None:
            handler.close()
        return rate

    rows = []
    for framework, run_one in (("loguru", loguru_run), ("structlog", structlog_run)):
        for threads in thread_counts:
            rates: dict[str, list[float]] = {"discard": [], "document": [], "redis": []}
            for _ in range(reps):
                for into, samples in rates.items():
                    samples.append(run_one(threads, into))
            discard_rate, document_rate, ours = (statistics.median(samples) for samples in rates.values())
            rows.append(
                {
                    "framework": framework,
                    "threads": threads,
                    "discard_records_per_s": discard_rate,
                    "floor_records_per_s": document_rate,
                    "records_per_s": ours,
                    "ratio_to_floor": ours / document_rate,
                    "ratio_to_discard": ours / discard_rate,
                }
            )
    return rows
