"""Benchmarks for redis-log-bridge: throughput, caller cost, memory, delivery latency, the consumer, scaling.

    python benchmarks/run.py            # the full suite (about 20 minutes on 2 cores)
    python benchmarks/run.py --smoke    # a short run with small N (what CI does; no assertions on time)

Every figure is measured against a real redis-server this script starts on a
free loopback port, and every speed is also given as a ratio to baselines
measured in the same run (machines are shared and noisy: compare ratios and
medians, not single absolute times). Results are printed as tables and
written as JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import consumer
import peers
import scaling
import spill
import sustained
from common import MESSAGE, new_logger, percentiles, run_threads

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis, _free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
Factory = Callable[[str], "tuple[logging.Handler, Callable[[], None]] | None"]


# --------------------------------------------------------------- throughput


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


def _ours(url: str, mode: str) -> Factory:
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
        ("RedisHandler, stream", _ours(url, "stream"), True),
        ("RedisHandler, list", _ours(url, "list"), True),
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
        _progress(f"throughput at {threads} thread(s) done")
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


# -------------------------------------------------------------- caller cost


def _time_calls(handler: logging.Handler, calls: int) -> list[int]:
    log = new_logger(handler, "caller")
    durations = []
    clock = time.perf_counter_ns
    for number in range(calls):
        started = clock()
        log.info(MESSAGE, "/api/orders", number)
        durations.append(clock() - started)
    log.removeHandler(handler)
    return durations


def caller_cost(calls: int) -> dict[str, Any]:
    """Latency of one logging call with Redis healthy, and with Redis frozen so the buffer fills."""
    results: dict[str, Any] = {"calls": calls}
    results["floor"] = percentiles(_time_calls(peers.Floor(), calls))
    with EmbeddedRedis() as server:
        healthy = RedisHandler(url=server.url, key="bench:caller")
        results["healthy"] = percentiles(_time_calls(healthy, calls))
        healthy.close()
        frozen = RedisHandler(url=server.url, key="bench:caller:frozen", close_timeout=0.5)
        warm = logging.LogRecord("warm", logging.INFO, __file__, 0, "warm", None, None)
        frozen.handle(warm)
        frozen.flush(5)
        server.pause()
        try:
            # More calls than the buffer holds, so it fills and evicts.
            frozen_calls = max(calls, frozen.settings.buffer_size * 3)
            results["frozen"] = percentiles(_time_calls(frozen, frozen_calls))
            results["frozen"]["calls"] = frozen_calls
            results["frozen"]["stats"] = frozen.stats()
        finally:
            server.resume()
        frozen.close()
    results["frozen_p99_9_over_healthy"] = results["frozen"]["p99_9_us"] / results["healthy"]["p99_9_us"]
    return results


# ------------------------------------------------------------------ memory


def _memory_child(records: int) -> None:
    """Log *records* records while Redis is down, then print the peak RSS as JSON."""
    handler = RedisHandler(url=f"redis://127.0.0.1:{_free_port()}/0", key="bench:memory", close_timeout=0.1)
    log = new_logger(handler, "memory")
    for number in range(records):
        log.info(MESSAGE, "/api/orders", number)
    stats = handler.stats()
    # VmHWM, not getrusage: ru_maxrss keeps the parent's high-water mark across exec.
    status = Path("/proc/self/status").read_text()
    peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    print(json.dumps({"records": records, "peak_rss_mib": peak_kib / 1024, "stats": stats}))
    os._exit(0)  # skip the exit-time close: Redis is down on purpose


def memory(small: int, large: int) -> dict[str, Any]:
    """Peak RSS of a process logging *large* vs *small* records into a handler while Redis is down."""
    runs = {}
    for records in (small, large):
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(records)],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        ).stdout
        runs[records] = json.loads(output.strip().splitlines()[-1])
    return {
        "small": runs[small],
        "large": runs[large],
        "ratio_large_to_small": runs[large]["peak_rss_mib"] / runs[small]["peak_rss_mib"],
    }


# ---------------------------------------------------------- delivery latency


def delivery_latency(url: str, seconds: float, rate: int) -> dict[str, Any]:
    """At a steady *rate* records/s, the time from the logging call until the record is readable in Redis."""
    key = f"bench:latency:{uuid.uuid4().hex}"
    handler = RedisHandler(url=url, key=key)
    log = new_logger(handler, "latency")
    total = int(seconds * rate)
    latencies: list[float] = []
    reader_ready = threading.Event()

    def read() -> None:
        client = redis.Redis.from_url(url)
        last = "0"
        reader_ready.set()
        while len(latencies) < total:
            for _, entries in client.xread({key: last}, block=200, count=1000) or []:
                now = time.time()
                for entry_id, fields in entries:
                    latencies.append(now - json.loads(fields[b"data"])["extra"]["sent"])
                    last = entry_id
        client.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader_ready.wait()
    started = time.perf_counter()
    for number in range(total):
        # A steady rate: each call at its own tick, whatever the previous one cost.
        delay = started + number / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        log.info(MESSAGE, "/api/orders", number, extra={"sent": time.time()})
    reader.join(60)
    log.removeHandler(handler)
    handler.close()
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return {
        "rate": rate,
        "records": len(ordered),
        "flush_interval_ms": handler.settings.flush_interval * 1000,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": ordered[-1] * 1000,
    }


# ------------------------------------------------------------------ report


def _progress(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


def _format_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def print_report(results: dict[str, Any]) -> None:
    """Print the results as Markdown tables (what docs/benchmarks.md shows)."""
    environment = results["environment"]
    print(
        f"\n## Environment\n\n{environment['machine']}; Python {environment['python']}; "
        f"{environment['redis_server']}; redis-py {environment['redis_py']}; JSON: {environment['json']}; "
        f"{environment['date']}; {results['settings']}"
    )
    rows = results["throughput"] + results["loguru"]
    thread_counts = sorted({row["threads"] for row in rows})
    print(
        "\n## Throughput, end to end (records/s until all are in Redis, median; in brackets the median of each"
        " repetition's ratio to the floor measured in the same repetition)\n"
    )
    print("| design | " + " | ".join(f"{threads} thread(s)" for threads in thread_counts) + " |")
    print("|---|" + "---|" * len(thread_counts))
    for design in dict.fromkeys(row["design"] for row in rows):
        cells = []
        for threads in thread_counts:
            row = next((r for r in rows if r["design"] == design and r["threads"] == threads), None)
            if row is None or row["records_per_s"] is None:
                cells.append("n/a")
            elif "ratio_to_floor" in row:
                cells.append(f"{_format_rate(row['records_per_s'])} ({row['ratio_to_floor']:.2f}x)")
            else:
                cells.append(_format_rate(row["records_per_s"]))
        print(f"| {design} | " + " | ".join(cells) + " |")
    if results["adapters"]:
        print("\n## Adapters, end to end (records/s, median)\n")
        print("Floors: the framework into a sink that discards the message, and into a sink that builds the")
        print("identical document and discards it (the adapter's own floor).\n")
        print("| adapter | threads | into a discarding sink | building the document | through RedisHandler |")
        print("|---|---|---|---|---|")
        for row in results["adapters"]:
            adapter = "LoguruSink" if row["framework"] == "loguru" else "StructlogProcessor"
            print(
                f"| {adapter} | {row['threads']} | {_format_rate(row['discard_records_per_s'])} | "
                f"{_format_rate(row['floor_records_per_s'])} | {_format_rate(row['records_per_s'])} "
                f"({row['ratio_to_floor']:.2f}x the document floor) |"
            )
    cost = results["caller_cost"]
    print("\n## Caller cost (one logging call, 1 thread, microseconds)\n")
    print("| case | calls | p50 | p99 | p99.9 | max |")
    print("|---|---|---|---|---|---|")
    for case in ("floor", "healthy", "frozen"):
        data = cost[case]
        calls = data.get("calls", cost["calls"])
        print(
            f"| {case} | {calls:,} | {data['p50_us']:.1f} | {data['p99_us']:.1f} | {data['p99_9_us']:.1f} | "
            f"{data['max_us']:.0f} |"
        )
    print(f"\nfrozen p99.9 / healthy p99.9 = {cost['frozen_p99_9_over_healthy']:.2f}")
    sustained.print_sustained(results["sustained"], **results["sustained_settings"])
    spill.print_spill(results["spill"])
    consumer.print_consumer(results["consumer"])
    mem = results["memory"]
    print("\n## Memory while Redis is down (buffer_size=100,000)\n")
    print("| records logged | peak RSS (MiB) | buffered | dropped_overflow |")
    print("|---|---|---|---|")
    for run in (mem["small"], mem["large"]):
        print(
            f"| {run['records']:,} | {run['peak_rss_mib']:.1f} | {run['stats']['buffered']:,} | "
            f"{run['stats']['dropped_overflow']:,} |"
        )
    print(f"\npeak RSS ratio = {mem['ratio_large_to_small']:.2f}")
    lat = results["latency"]
    print(
        f"\n## Delivery latency at {lat['rate']:,} records/s ({lat['records']:,} records, "
        f"flush_interval {lat['flush_interval_ms']:.0f} ms)\n"
    )
    print(f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms")
    scaled = results["scaling"]
    scaling.print_scaling(scaled["server_cost"], scaled["replica_wait"], scaled["aggregate"])


def _environment(url: str) -> dict[str, Any]:
    info = redis.Redis.from_url(url).info("server")
    server = info.get("valkey_version") and f"valkey-server {info['valkey_version']}"
    from redis_log_handler._shared.json import BACKEND  # noqa: PLC0415

    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "redis_server": server or f"redis-server {info['redis_version']}",
        "redis_py": redis.__version__,
        "json": BACKEND,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> int:
    """Run the suite and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small N, one repetition (CI)")
    parser.add_argument("--records", type=int, help="records per throughput run (default 20,000; smoke 2,000)")
    parser.add_argument("--reps", type=int, help="repetitions per design (default 5; smoke 1)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.memory_child is not None:
        _memory_child(arguments.memory_child)
    smoke = arguments.smoke
    records = arguments.records or (2_000 if smoke else 20_000)
    reps = arguments.reps or (1 if smoke else 5)
    peer_reps = min(reps, 3)
    thread_counts = [1, 20] if smoke else [1, 4, 20]
    with EmbeddedRedis() as server:
        results: dict[str, Any] = {
            "environment": _environment(server.url),
            "settings": f"records={records}, reps={reps} (peers {peer_reps}), smoke={smoke}",
        }
        _progress("throughput")
        results["throughput"] = throughput(server.url, records, thread_counts, reps, peer_reps)
        results["loguru"] = loguru_throughput(records, thread_counts, peer_reps)
        _progress("adapters")
        results["adapters"] = adapters(server.url, records, thread_counts, peer_reps)
        _progress("caller cost")
        results["caller_cost"] = caller_cost(5_000 if smoke else 100_000)
        _progress("sustained load")
        # Five short windows rather than three long ones: single runs on a shared machine spread by
        # +-0.1 around the median, and more of them make the median steadier for the same time.
        seconds = 1.0 if smoke else 6.0
        sustained_reps = 1 if smoke else 5
        cases = [(1, 0), (20, 0)] if smoke else sustained.CASES
        results["sustained"] = sustained.sustained(server.url, seconds, sustained_reps, cases)
        results["sustained_settings"] = {"seconds": seconds, "reps": sustained_reps}
        _progress("spill")
        results["spill"] = spill.spill_burst(20_000 if smoke else 200_000, 1 if smoke else 3)
        _progress("consumer")
        results["consumer"] = consumer.consumer_benchmark(
            server.url, 10_000 if smoke else 100_000, 1 if smoke else 5, 100_000 if smoke else 1_000_000
        )
        _progress("memory")
        results["memory"] = memory(10_000 if smoke else 100_000, 100_000 if smoke else 1_000_000)
        _progress("delivery latency")
        results["latency"] = delivery_latency(server.url, 0.5 if smoke else 10.0, 1000)
    _progress("scaling")
    results["scaling"] = {
        "server_cost": scaling.server_cost(5_000 if smoke else 100_000, 1 if smoke else 3),
        "replica_wait": scaling.replica_wait(5_000 if smoke else 100_000, 1 if smoke else 3),
        "aggregate": scaling.aggregate(5_000 if smoke else 100_000, 1 if smoke else 3),
    }
    print_report(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{'smoke' if smoke else 'full'}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nResults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
