"""The logging call's cost in two source trees, alternating: did a change add to the hot path?

    python benchmarks/trees.py OLD_TREE NEW_TREE [--python PYTHON] [--reps 11] [--records 200000]

Each run is a fresh process of PYTHON with ``PYTHONPATH`` set to one tree: it
logs RECORDS records from one thread into a healthy server this script
starts, and prints the mean microseconds per logging call (the writer drains
concurrently, as in an application). The trees alternate, and the medians and
their ratio are printed. Use a PYTHON whose environment has what the case
needs and nothing more (for "OpenTelemetry not installed": a venv with
``redis``, ``orjson`` and ``hiredis`` only). ``git worktree add /tmp/old <rev>``
gives an old tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis_log_handler.testing import EmbeddedRedis

_CHILD = """
import logging, os, sys, time
import redis_log_handler
from redis_log_handler import RedisHandler

tree = os.environ["PYTHONPATH"]
assert redis_log_handler.__file__.startswith(tree + "/"), f"{redis_log_handler.__file__} is not from {tree}"

url, key, records = sys.argv[1], sys.argv[2], int(sys.argv[3])
handler = RedisHandler(url=url, key=key, buffer_size=records + 10_000)
log = logging.getLogger("trees")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
for number in range(5000):  # warm up: the runtime started, the connection made
    log.info("request %s served in %d ms", "/api/orders", number)
handler.flush(30)
started = time.perf_counter()
for number in range(records):
    log.info("request %s served in %d ms", "/api/orders", number)
elapsed = time.perf_counter() - started
assert handler.flush(120), "not everything was written"
handler.close()
print(elapsed / records * 1e6)
"""


def main() -> int:
    """Alternate the two trees and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--records", type=int, default=200_000)
    arguments = parser.parse_args()
    trees = {"old": arguments.old.resolve(), "new": arguments.new.resolve()}
    costs: dict[str, list[float]] = {name: [] for name in trees}
    with EmbeddedRedis() as server:
        for rep in range(arguments.reps):
            for name, tree in trees.items():
                result = subprocess.run(
                    [arguments.python, "-c", _CHILD, server.url, f"trees:{name}:{rep}", str(arguments.records)],
                    env={**os.environ, "PYTHONPATH": str(tree)},
                    cwd=tree,  # "python -c" puts the working directory first on sys.path
                    capture_output=True,
                    text=True,
                    check=True,
                )
                costs[name].append(float(result.stdout))
    for name, tree in trees.items():
        runs = ", ".join(f"{cost:.2f}" for cost in costs[name])
        print(f"{name} ({tree}): median {statistics.median(costs[name]):.2f} µs per call; runs {runs}")
    print(f"new / old = {statistics.median(costs['new']) / statistics.median(costs['old']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
