"""Burst and sustained load in two source trees, alternating: did a change cost throughput or drop records?

    python benchmarks/ab_load.py OLD_TREE NEW_TREE [--reps 5] [--records 20000] [--seconds 3]

Each repetition runs, for each tree in turn (the order alternates), a fresh process with ``PYTHONPATH`` set
to that tree which measures, against one server this script starts:

- burst: ``burst.throughput`` at 1, 4 and 20 threads, the ratio of RedisHandler's written rate to the floor
  (stream and list mode);
- sustained: ``sustained.sustained`` at 1, 4 and 20 threads for SECONDS, the ratio to the floor runs around
  each handler run, and the records dropped.

Each tree runs its own ``benchmarks/`` (the floor builds and encodes the document with that tree's own
code, so the ratio is the handler's cost over that tree's document cost; before the split of ``run.py`` an
old tree's ``throughput`` is in ``run``). Printed: for each case the median ratio of each tree over the
repetitions, the new/old ratio, and the drops. ``git worktree add /tmp/old <rev>`` gives an old tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis_log_handler.testing import EmbeddedRedis

_CHILD = """
import json, sys
sys.path.insert(1, sys.argv[4])
import redis_log_handler
tree = sys.argv[4].removesuffix("/benchmarks")
assert redis_log_handler.__file__.startswith(tree + "/"), f"{redis_log_handler.__file__} is not from {tree}"
try:
    from burst import throughput
except ImportError:  # a tree from before run.py was split
    from run import throughput
import sustained

url, records, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
result = {}
for row in throughput(url, records, [1, 4, 20], 1, 0):
    if row["design"].startswith("RedisHandler") and row["ratio_to_floor"] is not None:
        mode = row["design"].split(", ")[1]
        result[f"burst {row['threads']:>2} threads {mode}"] = [row["ratio_to_floor"], 0]
for row in sustained.sustained(url, seconds, 1, [(1, 0), (4, 0), (20, 0)]) if seconds > 0 else []:
    if row["design"] != "floor":
        key = f"sustained {row['threads']:>2} threads {row['design']}"
        result[key] = [row["ratio_to_floor"], row["dropped"]]
print("RESULT " + json.dumps(result))
"""


def _measure(tree: Path, url: str, records: int, seconds: float) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(records), str(seconds), str(tree / "benchmarks")],
        env=env,
        cwd=tree,  # "python -c" puts the working directory first on sys.path: it must be the tree measured
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, list[float]] = json.loads(line.removeprefix("RESULT "))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="sustained window per run; 0: burst only")
    arguments = parser.parse_args()
    trees = {"old": arguments.old.resolve(), "new": arguments.new.resolve()}
    samples: dict[str, dict[str, list[list[float]]]] = {"old": {}, "new": {}}
    with EmbeddedRedis() as server:
        for rep in range(arguments.reps):
            order = ["old", "new"] if rep % 2 == 0 else ["new", "old"]
            for name in order:
                for case, value in _measure(trees[name], server.url, arguments.records, arguments.seconds).items():
                    samples[name].setdefault(case, []).append(value)
            print(f"repetition {rep + 1} of {arguments.reps} done", file=sys.stderr)
    print(f"{'case':<32} {'old':>6} {'new':>6} {'new/old':>8} {'dropped old/new':>16}")
    for case in samples["old"]:
        old = statistics.median(value[0] for value in samples["old"][case])
        new = statistics.median(value[0] for value in samples["new"][case])
        dropped = f"{sum(v[1] for v in samples['old'][case]):.0f}/{sum(v[1] for v in samples['new'][case]):.0f}"
        print(f"{case:<32} {old:6.3f} {new:6.3f} {new / old:8.3f} {dropped:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
