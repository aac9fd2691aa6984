"""What the benchmark modules share: the message, a fresh logger, threads released at once, percentiles, progress."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable

MESSAGE = "request %s served in %d ms"


def new_logger(handler: logging.Handler, purpose: str) -> logging.Logger:
    """A fresh non-propagating INFO logger whose only handler is *handler*."""
    log = logging.getLogger(f"bench.{purpose}.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50, p99, p99.9 and max of durations in nanoseconds, in microseconds."""
    ordered = sorted(samples_ns)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000

    return {"p50_us": at(0.5), "p99_us": at(0.99), "p99_9_us": at(0.999), "max_us": ordered[-1] / 1000}


def run_threads(threads: int, work: Callable[[int], None], finish: Callable[[], None] = lambda: None) -> float:
    """Run ``work(thread)`` on *threads* threads released at once; seconds until all returned and ``finish()`` did."""
    gate = threading.Barrier(threads + 1)

    def start(thread: int) -> None:
        gate.wait()
        work(thread)

    workers = [threading.Thread(target=start, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    gate.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    finish()
    return time.perf_counter() - started


def progress(text: str) -> None:
    """A line on stderr saying how far a run is."""
    print(f"  ... {text}", file=sys.stderr, flush=True)
