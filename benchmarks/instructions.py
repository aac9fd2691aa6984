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


def _count(design: str, records: int, url: str) -> int:
    """Instructions the child process executes for *design* and *records*, all threads."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
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


def per_record(records: int, url: str) -> dict[str, float]:
    """Instructions per record of each design."""
    return {design: (_count(design, records, url) - _count(design, 0, url)) / records for design in DESIGNS}


def main() -> int:
    """Count every design and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
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
    floor = counts["do-nothing"]
    print(f"\n{redis_log_handler.__file__}: instructions per record, {arguments.records:,} records\n")
    print("| design | instructions | do-nothing's / this (the ratio if time followed instructions) |")
    print("|---|---|---|")
    for design, description in DESIGNS.items():
        print(f"| {description} | {counts[design]:,.0f} | {floor / counts[design]:.2f} |")
    writer = (counts["stream"] + counts["list"]) / 2 - counts["call"]
    print(f"\nThe writer's share (shipped minus the logging call, both modes' mean): {writer:,.0f} per record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
