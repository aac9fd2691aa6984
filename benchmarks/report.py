"""The report: every result of a run as the Markdown tables docs/benchmarks.md shows."""

from __future__ import annotations

from typing import Any

import consumer
import scaling
import spill
import sustained


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
