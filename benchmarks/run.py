"""Benchmarks for redis-log-bridge: bursts, sustained load, caller cost, spill, consumer, memory, latency, scaling.

    python benchmarks/run.py            # the full suite (about 20 minutes on 2 cores)
    python benchmarks/run.py --smoke    # a short run with small N (what CI does; no assertions on time)

Every figure is measured against a real redis-server this script starts on a
free loopback port, and every speed is also given as a ratio to baselines
measured in the same run (machines are shared and noisy: compare ratios and
medians, not single absolute times). Results are printed as tables
(``report``) and written as JSON to benchmarks/results/.

Each part lives in a module of its own (``burst``, ``sustained``, ``latency``,
``spill``, ``consumer``, ``memory``, ``scaling``); this script runs them with
the sizes of one row of ``SIZES``: ``full`` for the figures in
docs/benchmarks.md, ``smoke`` to check in CI that every part still runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import burst
import consumer
import latency
import memory
import report
import scaling
import spill
import sustained
from common import progress

from redis_log_handler.testing import EmbeddedRedis

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """How much each part of a run measures."""

    records: int  # per burst run
    reps: int  # burst repetitions (the peers and adapters run at most 3)
    thread_counts: tuple[int, ...]
    caller_calls: int
    sustained_seconds: float  # one window
    sustained_reps: int
    sustained_cases: tuple[tuple[int, int], ...]  # (threads, CPU-bound threads beside them)
    spill_records: int
    spill_reps: int
    consumer_records: int
    consumer_reps: int
    consumer_backlog: int
    memory_small: int
    memory_large: int
    latency_seconds: float
    scaling_records: int
    scaling_reps: int


# Sustained load: five short windows rather than three long ones: single runs on a shared machine spread
# by +-0.1 around the median, and more of them make the median steadier for the same time.
SIZES = {
    "full": Sizes(
        records=20_000, reps=5, thread_counts=(1, 4, 20), caller_calls=100_000,
        sustained_seconds=6.0, sustained_reps=5, sustained_cases=tuple(sustained.CASES),
        spill_records=200_000, spill_reps=3, consumer_records=100_000, consumer_reps=5, consumer_backlog=1_000_000,
        memory_small=100_000, memory_large=1_000_000, latency_seconds=10.0, scaling_records=100_000, scaling_reps=3,
    ),
    "smoke": Sizes(
        records=2_000, reps=1, thread_counts=(1, 20), caller_calls=5_000,
        sustained_seconds=1.0, sustained_reps=1, sustained_cases=((1, 0), (20, 0)),
        spill_records=20_000, spill_reps=1, consumer_records=10_000, consumer_reps=1, consumer_backlog=100_000,
        memory_small=10_000, memory_large=100_000, latency_seconds=0.5, scaling_records=5_000, scaling_reps=1,
    ),
}  # fmt: skip


def _environment(url: str) -> dict[str, Any]:
    info = redis.Redis.from_url(url).info("server")
    server = info.get("valkey_version") and f"valkey-server {info['valkey_version']}"
    from redis_log_handler._shared.json_codec import BACKEND  # noqa: PLC0415

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
    parser.add_argument("--smoke", action="store_true", help="the smoke sizes: small N, one repetition (CI)")
    parser.add_argument("--records", type=int, help="records per burst run (instead of the sizes' own)")
    parser.add_argument("--reps", type=int, help="repetitions per burst design (instead of the sizes' own)")
    arguments = parser.parse_args()
    run_name = "smoke" if arguments.smoke else "full"
    sizes = dataclasses.replace(
        SIZES[run_name],
        **{name: value for name in ("records", "reps") if (value := getattr(arguments, name))},
    )
    peer_reps = min(sizes.reps, 3)
    threads = list(sizes.thread_counts)
    with EmbeddedRedis() as server:
        results: dict[str, Any] = {
            "environment": _environment(server.url),
            "settings": f"records={sizes.records}, reps={sizes.reps} (peers {peer_reps}), smoke={arguments.smoke}",
        }
        progress("throughput")
        results["throughput"] = burst.throughput(server.url, sizes.records, threads, sizes.reps, peer_reps)
        results["loguru"] = burst.loguru_throughput(sizes.records, threads, peer_reps)
        progress("adapters")
        results["adapters"] = burst.adapters(server.url, sizes.records, threads, peer_reps)
        progress("caller cost")
        results["caller_cost"] = latency.caller_cost(sizes.caller_calls)
        progress("sustained load")
        results["sustained"] = sustained.sustained(
            server.url, sizes.sustained_seconds, sizes.sustained_reps, list(sizes.sustained_cases)
        )
        results["sustained_settings"] = {"seconds": sizes.sustained_seconds, "reps": sizes.sustained_reps}
        progress("spill")
        results["spill"] = spill.spill_burst(sizes.spill_records, sizes.spill_reps)
        progress("consumer")
        results["consumer"] = consumer.consumer_benchmark(
            server.url, sizes.consumer_records, sizes.consumer_reps, sizes.consumer_backlog
        )
        progress("memory")
        results["memory"] = memory.memory(sizes.memory_small, sizes.memory_large)
        progress("delivery latency")
        results["latency"] = latency.delivery_latency(server.url, sizes.latency_seconds, 1000)
    progress("scaling")
    results["scaling"] = {
        "server_cost": scaling.server_cost(sizes.scaling_records, sizes.scaling_reps),
        "replica_wait": scaling.replica_wait(sizes.scaling_records, sizes.scaling_reps),
        "aggregate": scaling.aggregate(sizes.scaling_records, sizes.scaling_reps),
    }
    report.print_report(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{run_name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nResults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
