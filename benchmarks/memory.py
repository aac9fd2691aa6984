"""Memory while Redis is down: the peak RSS of a process logging 10x more records than the buffer holds.

python benchmarks/memory.py RECORDS    # one child run: prints its peak RSS as JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import MESSAGE, new_logger

from redis_log_handler import RedisHandler
from redis_log_handler.testing import _free_port


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
            [sys.executable, __file__, str(records)],
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


if __name__ == "__main__":
    _memory_child(int(sys.argv[1]))
