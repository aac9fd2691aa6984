"""Sustained load: threads log without pause for several seconds while the writer has to keep up.

A burst that fits in the buffer hides a writer that cannot keep up: it is
drained once the producers are done, when the runtime thread has the GIL to
itself. Here T threads log in a loop without pause (optionally doing CPU work
between records, as a busy service does), and the writer competes with all of
them for the GIL the whole time. After a second of warm-up (the handler starts
with the load) the counts are taken over a window of several seconds: the
steady state. Reported for each case, against the floor (the same loop
building the same document and discarding it, no lock) measured just before and
just after each handler run (the machine's speed drifts over seconds):

- accept rate: logging calls per second during the window;
- written rate: records confirmed written to Redis during the window, per second;
- ratio: written rate over the mean accept rate of the two floor runs around it;
- drop share: records dropped, of all accepted, once the handler has drained (the worst repetition's);
- caller latency p50/p99/p99.9 of the logging calls during the window.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from typing import Any

import peers
import redis
from common import MESSAGE, new_logger, percentiles

from redis_log_handler import RedisHandler


def cpu_work(rounds: int) -> int:
    """About ``rounds`` x 0.025 us of pure-Python work (400 rounds is about 10 us on the benchmark machine)."""
    total = 0
    for number in range(rounds):
        total += number * number
    return total


WARM_UP = 1.0  # seconds of load before the window opens: the measurement is of the steady state


def _load(handler: logging.Handler, threads: int, seconds: float, work: int) -> dict[str, Any]:
    """Log from *threads* threads for WARM_UP + *seconds*; counts and call durations within the window."""
    log = new_logger(handler, "sustained")
    stop = threading.Event()
    gate = threading.Barrier(threads + 1)
    calls = [0] * threads  # logging calls made by each thread so far
    window = threading.Event()  # set while the window is open: calls are timed only then
    durations: list[list[int]] = [[] for _ in range(threads)]

    def produce(thread: int) -> None:
        clock = time.perf_counter_ns
        own = durations[thread]
        timing = window.is_set
        gate.wait()
        while not stop.is_set():
            if work:
                cpu_work(work)
            started = clock()
            log.info(MESSAGE, "/api/orders", calls[thread])
            if timing():
                own.append(clock() - started)
            calls[thread] += 1

    workers = [threading.Thread(target=produce, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    gate.wait()
    time.sleep(WARM_UP)  # producers run flat out while the handler starts and the backlog settles
    window.set()
    accepted_before, written_before = sum(calls), _written(handler)
    started = time.perf_counter()
    time.sleep(seconds)  # the measurement window
    accepted_after, written_after = sum(calls), _written(handler)
    elapsed = time.perf_counter() - started
    window.clear()
    stop.set()
    for worker in workers:
        worker.join()
    log.removeHandler(handler)
    return {
        "elapsed": elapsed,
        "accepted": accepted_after - accepted_before,
        "written": None if written_after is None else written_after - written_before,  # type: ignore[operator]
        "durations": [duration for own in durations for duration in own],
    }


def _written(handler: logging.Handler) -> int | None:
    return int(handler.stats()["written"]) if isinstance(handler, RedisHandler) else None


def _handler_run(url: str, mode: str, threads: int, seconds: float, work: int) -> dict[str, Any]:
    key = f"bench:sustained:{uuid.uuid4().hex}"
    handler = RedisHandler(url=url, key=key, mode=mode)
    run = _load(handler, threads, seconds, work)
    handler.flush(120)  # False when records were dropped: the drop share below says how many
    stats = handler.stats()
    if stats["buffered"]:
        raise RuntimeError(f"RedisHandler ({mode}) did not drain after the load: {stats}")
    handler.close()
    # Every run writes about a million records: left in place, later cases would run against a server
    # holding gigabytes, which is not the steady state being measured.
    with redis.Redis.from_url(url) as client:
        client.unlink(key)
    return {
        "accept_rate": run["accepted"] / run["elapsed"],
        "written_rate": run["written"] / run["elapsed"],
        "drop_share": stats["dropped"] / stats["accepted"],
        "dropped": stats["dropped"],
        "drop_reasons": {name: stats[name] for name in DROP_REASONS if stats[name]},
        "latency": percentiles(run["durations"]),
    }


DROP_REASONS = ("dropped_overflow", "dropped_closed", "dropped_error", "dropped_internal")
CASES = [(1, 0), (4, 0), (20, 0), (20, 400), (50, 400)]  # (threads, rounds of CPU work between records)


def _floor_run(threads: int, seconds: float, work: int) -> dict[str, Any]:
    floor = _load(peers.Floor(), threads, seconds, work)
    return {"accept_rate": floor["accepted"] / floor["elapsed"], "latency": percentiles(floor["durations"])}


def sustained(url: str, seconds: float, reps: int, cases: list[tuple[int, int]] = CASES) -> list[dict[str, Any]]:
    """Each case in stream and list mode, *reps* repetitions, each handler run bracketed by floor runs.

    The machine's speed drifts over seconds (it is shared): each handler run is compared with the mean of
    the floor runs just before and just after it (floor, stream, floor, list, floor).
    """
    rows = []
    for threads, work in cases:
        samples: dict[str, list[dict[str, Any]]] = {"floor": [], "stream": [], "list": []}
        brackets: dict[str, list[float]] = {"stream": [], "list": []}
        for _ in range(reps):
            before = _floor_run(threads, seconds, work)
            samples["floor"].append(before)
            for mode in ("stream", "list"):
                samples[mode].append(_handler_run(url, mode, threads, seconds, work))
                after = _floor_run(threads, seconds, work)
                samples["floor"].append(after)
                brackets[mode].append((before["accept_rate"] + after["accept_rate"]) / 2)
                before = after
        for design in ("floor", "stream", "list"):
            runs = samples[design]
            row: dict[str, Any] = {
                "threads": threads,
                "work_rounds": work,
                "design": design,
                "accept_rate": statistics.median(run["accept_rate"] for run in runs),
                "latency": {key: statistics.median(run["latency"][key] for run in runs) for key in runs[0]["latency"]},
            }
            if design != "floor":
                ratios = [run["written_rate"] / floor for run, floor in zip(runs, brackets[design], strict=True)]
                row["written_rate"] = statistics.median(run["written_rate"] for run in runs)
                row["ratio_to_floor"] = statistics.median(ratios)
                # The worst repetition, not the median: a drop in any run is a drop.
                row["drop_share"] = max(run["drop_share"] for run in runs)
                row["dropped"] = sum(run["dropped"] for run in runs)
                row["drop_reasons"] = [run["drop_reasons"] for run in runs]
                row["ratios"] = ratios
            rows.append(row)
    return rows


def print_sustained(rows: list[dict[str, Any]], seconds: float, reps: int) -> None:
    """The sustained-load table (Markdown)."""
    if not rows:
        return
    print(
        f"\n## Sustained load ({seconds:g} s per run, median of {reps}; ratio = written rate over the mean accept rate "
        "of the floor runs just before and after; dropped = the worst repetition's share, and the records dropped "
        "in all; caller latency in microseconds)\n"
    )
    print("| threads | CPU work | design | accepted/s | written/s | ratio | dropped | p50 | p99 | p99.9 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        work = f"{row['work_rounds']} rounds" if row["work_rounds"] else "none"
        latency = row["latency"]
        if row["design"] == "floor":
            written = ratio = dropped = "-"
        else:
            written = f"{row['written_rate']:,.0f}"
            ratio = f"{row['ratio_to_floor']:.2f}x"
            dropped = f"{row['drop_share']:.1%} ({row['dropped']:,})"
        print(
            f"| {row['threads']} | {work} | {row['design']} | {row['accept_rate']:,.0f} | {written} | {ratio} | "
            f"{dropped} | {latency['p50_us']:.1f} | {latency['p99_us']:.1f} | {latency['p99_9_us']:.1f} |"
        )
