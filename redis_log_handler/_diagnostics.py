"""Rate-limited diagnostics on stderr that never pass through logging.

The handler reports its own problems here rather than through a logger: a
logger could route the report back into the handler (recursion), and
``logging.config.dictConfig`` disables existing loggers by default, which
would silence it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["REPORT_INTERVAL", "describe", "report"]

REPORT_INTERVAL = 30.0  # seconds between two lines about the same kind of problem

_lock = threading.Lock()
# kind -> (time of the last line written, occurrences suppressed since)
_last: dict[str, tuple[float, int]] = {}


def describe(exc: BaseException) -> str:
    """``Type: message`` for an exception, whatever its repr looks like."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report(kind: str, message: str, *, force: bool = False) -> bool:
    """Write one line about *kind* to stderr unless one was written in the last interval.

    Suppressed occurrences are counted and their number is added to the next
    line. Returns whether a line was written. Never raises.
    """
    now = time.monotonic()
    with _lock:
        last, suppressed = _last.get(kind, (-REPORT_INTERVAL, 0))
        if not force and now - last < REPORT_INTERVAL:
            _last[kind] = (last, suppressed + 1)
            return False
        _last[kind] = (now, 0)
    note = f" ({suppressed} more since the last report)" if suppressed else ""
    try:
        stream = sys.stderr
        if stream is not None:
            stream.write(f"redis_log_handler[{os.getpid()}]: {message}{note}\n")
            stream.flush()
    except Exception:
        return False
    return True


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _last.clear()


os.register_at_fork(after_in_child=_forget_in_child)
