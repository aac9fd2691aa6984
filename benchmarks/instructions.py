"""The cost of one record in instructions: what a logging call executes, counted by valgrind, not timed.

    python benchmarks/instructions.py [--records 20000]

Timings on a shared machine move by 10-20% from run to run; instruction counts do not (the same binary,
inputs and environment give the same count, whatever else the machine does). Each design runs in a child
process under ``valgrind --tool=callgrind`` twice, with no records and with ``--records`` of them, and
the difference over the records is the instructions one record costs: the process's start and imports
cancel out. Every thread is counted (valgrind runs them one at a time), so the shipped designs include
the writer's share.

- **do-nothing**: stdlib's dispatch, a handler whose ``emit`` does nothing and whose ``handle`` takes no
  lock (``per_record.DoNothing``);
- **getMessage**: the same, formatting the message;
- **the logging call** of RedisHandler, its buffer a no-op (the caller's side only), the call-site way and
  the whole document way (``CallSiteEncoder`` off);
- **shipped**, stream and list mode: the same calls with the writer sending them to a server this script
  starts, until ``flush()`` says all are in.

``--where`` also prints, for the logging call against the do-nothing handler, the instructions per record
spent in each of CPython's C functions (``callgrind_annotate``): the interpreter's loop running
bytecode, dictionary lookups, allocation, joining bytes.

What this cannot show: the cost of the GIL passing between the logging thread and the writer, and of
memory the caches miss (a record's frame is allocated on one thread and freed on another). Those are in
``per_record.py``'s times, not here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

MESSAGE = "request %d served in %s ms"
DESIGNS = {
    "do-nothing": "stdlib's dispatch, emit does nothing",
    "getMessage": "the same, formatting the message",
    "call": "RedisHandler's logging call, call-site way (buffer a no-op)",
    "call-whole": "RedisHandler's logging call, whole document way (buffer a no-op)",
    "stream": "RedisHandler, stream, shipped (the writer included)",
    "list": "RedisHandler, list, shipped (the writer included)",
}


def child(design: str, records: int, url: str) -> None:
    """Log *records* records through *design* (after one that warms it up), in this process."""
    import logging  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from per_record import DoNothing, GetMessage  # noqa: PLC0415

    log = logging.getLogger("bench.instructions")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler: logging.Handler
    if design in ("do-nothing", "getMessage"):
        handler = DoNothing() if design == "do-nothing" else GetMessage()
    else:
        from redis_log_handler import RedisHandler  # noqa: PLC0415

        shipped = design in ("stream", "list")
        redis_handler = RedisHandler(url=url, key=f"bench:instructions:{design}", mode=design if shipped else "stream")
        if not shipped:
            redis_handler._shipper.intake.put = lambda framed: None  # type: ignore[method-assign]
        if design == "call-whole":
            redis_handler._call_sites.enabled = False
        handler = redis_handler
    log.addHandler(handler)

    def settle() -> None:
        if design in ("stream", "list") and not handler.flush(300):  # type: ignore[call-arg]
            raise RuntimeError(f"not delivered: {handler.stats()}")  # type: ignore[attr-defined]

    log.info(MESSAGE, 0, "12.5")  # the call site is learned, the writer connected
    settle()
    info = log.info
    for number in range(records):
        info(MESSAGE, number, "12.5")
    settle()


def _count(design: str, records: int, url: str, out_file: str = "/dev/null") -> int:
    """Instructions the child process executes for *design* and *records*, all threads."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            sys.executable,
            __file__,
            "--child",
            design,
            "--records",
            str(records),
            "--url",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{design}: valgrind failed:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def _by_function(design: str, records: int, url: str) -> Counter[str]:
    """Instructions the child executes in each C function (recursion levels merged)."""
    with tempfile.TemporaryDirectory() as directory:
        out_file = str(Path(directory) / "callgrind.out")
        _count(design, records, url, out_file)
        annotated = subprocess.run(
            ["callgrind_annotate", "--threshold=100", out_file], capture_output=True, text=True, check=True
        ).stdout
    counts: Counter[str] = Counter()
    for line in annotated.splitlines():
        found = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(\S.*?)(?: \[.*\])?$", line)
        if found and "PROGRAM TOTALS" not in line:
            function = found.group(2).rsplit(":", 1)[-1].split("'")[0]
            counts[function] += int(found.group(1).replace(",", ""))
    return counts


def where(records: int, url: str) -> dict[str, float]:
    """Instructions per record by C function: RedisHandler's logging call minus the do-nothing handler."""
    per: dict[str, Counter[str]] = {}
    for design in ("call", "do-nothing"):
        none, some = _by_function(design, 0, url), _by_function(design, records, url)
        per[design] = Counter({function: (some[function] - none[function]) / records for function in some | none})
    per["call"].subtract(per["do-nothing"])
    return dict(per["call"])


def per_record(records: int, url: str) -> dict[str, float]:
    """Instructions per record of each design."""
    return {design: (_count(design, records, url) - _count(design, 0, url)) / records for design in DESIGNS}


def main() -> int:
    """Count every design and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--where", action="store_true", help="also the logging call's instructions by C function")
    parser.add_argument("--child", choices=list(DESIGNS), help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.records, arguments.url)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    import redis_log_handler  # noqa: PLC0415
    from redis_log_handler.testing import EmbeddedRedis  # noqa: PLC0415

    with EmbeddedRedis() as server:
        counts = per_record(arguments.records, server.url)
        functions = where(arguments.records, server.url) if arguments.where else {}
    floor = counts["do-nothing"]
    print(f"\n{redis_log_handler.__file__}: instructions per record, {arguments.records:,} records\n")
    print("| design | instructions | do-nothing's / this (the ratio if time followed instructions) |")
    print("|---|---|---|")
    for design, description in DESIGNS.items():
        print(f"| {description} | {counts[design]:,.0f} | {floor / counts[design]:.2f} |")
    writer = (counts["stream"] + counts["list"]) / 2 - counts["call"]
    print(f"\nThe writer's share (shipped minus the logging call, both modes' mean): {writer:,.0f} per record")
    if functions:
        print("\nThe logging call's instructions per record over the do-nothing handler's, by C function\n")
        print("| C function | instructions |")
        print("|---|---|")
        ranked = sorted(functions.items(), key=lambda item: -abs(item[1]))
        for function, count in ranked[:20]:
            print(f"| `{function}` | {count:,.0f} |")
        print(f"| the other {len(ranked) - 20} | {sum(count for _, count in ranked[20:]):,.0f} |")
        print(f"| **all** | {sum(functions.values()):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
