"""The disk spill under a burst: what a logging call costs while records go to disk, and how fast they go.

Redis is down (nothing listens at the URL) and the memory buffer is full, so
every record the application logs makes room by moving the oldest records in
memory to the spill (the calling thread writes them, a chunk at a time). The
floor is measured in the same run: the same document built and discarded.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from typing import Any

import peers
from common import MESSAGE, new_logger, percentiles, run_threads

from redis_log_handler import RedisHandler
from redis_log_handler.testing import _free_port

BUFFER = 10_000


def _timed_burst(log: logging.Logger, threads: int, per_thread: int) -> tuple[float, list[int]]:
    """Log from *threads* threads at once; records/s over the burst, and every call's duration in ns."""
    durations: list[list[int]] = [[] for _ in range(threads)]

    def work(thread: int) -> None:
        clock = time.perf_counter_ns
        own = durations[thread]
        for number in range(per_thread):
            started = clock()
            log.info(MESSAGE, "/api/orders", number)
            own.append(clock() - started)

    elapsed = run_threads(threads, work)
    return threads * per_thread / elapsed, [duration for own in durations for duration in own]


def _spilling_run(threads: int, records: int) -> dict[str, Any]:
    """One burst of *records* into a handler whose buffer is already full and whose Redis is down."""
    directory = tempfile.mkdtemp(prefix="bench-spill-")
    handler = RedisHandler(
        url=f"redis://127.0.0.1:{_free_port()}/0", key="bench:spill", buffer_size=BUFFER, spill_dir=directory
    )
    log = new_logger(handler, "spill")
    for number in range(BUFFER):  # fill memory: from here on every record spills
        log.info(MESSAGE, "/api/orders", number)
    rate, durations = _timed_burst(log, threads, records // threads)
    stats = handler.stats()
    log.removeHandler(handler)
    handler.close()
    shutil.rmtree(directory, ignore_errors=True)
    if stats["dropped"]:
        raise RuntimeError(f"the spill dropped records: {stats}")
    return {"rate": rate, "latency": percentiles(durations), "spilled": stats["spilled"]}


def spill_burst(records: int, reps: int) -> list[dict[str, Any]]:
    """Spill throughput and caller cost at 1 and 8 threads, with the floor's in the same repetitions."""
    rows = []
    for threads in (1, 8):
        floor_rates: list[float] = []
        floor_latency: list[int] = []
        runs = []
        for _ in range(reps):
            rate, durations = _timed_burst(new_logger(peers.Floor(), "spill"), threads, records // threads)
            floor_rates.append(rate)
            floor_latency.extend(durations)
            runs.append(_spilling_run(threads, records))
        rates = [run["rate"] for run in runs]
        rows.append(
            {
                "threads": threads,
                "records": records,
                "spill_records_per_s": statistics.median(rates),
                "floor_records_per_s": statistics.median(floor_rates),
                "ratio_to_floor": statistics.median(r / f for r, f in zip(rates, floor_rates, strict=True)),
                "latency": {key: statistics.median(run["latency"][key] for run in runs) for key in runs[0]["latency"]},
                "worst_p99_9_us": max(run["latency"]["p99_9_us"] for run in runs),
                "floor_latency": percentiles(floor_latency),
            }
        )
    return rows


def print_spill(rows: list[dict[str, Any]]) -> None:
    """The spill table (Markdown)."""
    if not rows:
        return
    print(
        f"\n## Spilling: Redis down, buffer_size={BUFFER:,} full, every record goes to disk "
        "(records/s; caller cost in microseconds, median of the repetitions)\n"
    )
    print("| threads | records | spill rate | floor rate | ratio | p50 | p99 | p99.9 (worst rep) | max | floor p99.9 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        latency = row["latency"]
        print(
            f"| {row['threads']} | {row['records']:,} | {row['spill_records_per_s']:,.0f} | "
            f"{row['floor_records_per_s']:,.0f} | {row['ratio_to_floor']:.2f}x | {latency['p50_us']:.1f} | "
            f"{latency['p99_us']:.1f} | {latency['p99_9_us']:.1f} ({row['worst_p99_9_us']:.1f}) | "
            f"{latency['max_us']:,.0f} | {row['floor_latency']['p99_9_us']:.1f} |"
        )
