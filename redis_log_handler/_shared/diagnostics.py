"""Rate-limited diagnostics on stderr through a private logger.

The logger is created directly rather than with ``logging.getLogger``: it is
not part of the logger hierarchy, so it never propagates to the root logger
(which could route the report back into a RedisHandler) and
``logging.config.dictConfig`` cannot disable it. Its only handler writes to
whatever ``sys.stderr`` is at the time.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from .fork import after_fork_in_child
from .native import allocate_lock, original

__all__ = ["REPORT_INTERVAL", "describe", "records", "report", "were"]

REPORT_INTERVAL = 30.0  # seconds between two lines about the same kind of problem


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler bound to the current ``sys.stderr`` (replaced by test runners and daemons).

    Where that stream is gone (closed, as Dramatiq's worker processes leave the pipe they put in its place
    before their exit hooks run, or failing), the line goes to the process's own stderr instead: the lines
    written at exit are the ones that name lost records.
    """

    @property
    def stream(self) -> TextIO:
        stream = sys.stderr
        if stream is None or getattr(stream, "closed", False):
            return sys.__stderr__  # type: ignore[return-value] # None only without a stderr at all
        return stream

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        """Write the line to the process's own stderr when the current ``sys.stderr`` failed."""
        original = sys.__stderr__
        if original is None or original is sys.stderr:
            return
        try:
            original.write(self.format(record) + self.terminator)
            original.flush()
        except Exception:  # noqa: S110 - nowhere left to say it
            pass

    def createLock(self) -> None:
        """A native lock: the runtime's thread reports too, also where gevent patched threading."""
        self.lock = original("_thread", "RLock")()


def _make_logger() -> logging.Logger:
    logger = logging.Logger("redis_log_handler", logging.WARNING)
    logger.propagate = False
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("redis_log_handler[%(process)d]: %(message)s"))
    logger.addHandler(handler)
    logger.isEnabledFor(logging.WARNING)  # fills the level cache now: a miss takes logging's own lock
    return logger


_logger = _make_logger()
_lock = allocate_lock()
# kind -> (time of the last line written, occurrences suppressed since)
_last: dict[str, tuple[float, int]] = {}


def describe(exc: BaseException) -> str:
    """``Type: message`` for an exception, whatever its repr looks like.

    A trailing full stop is dropped (redis-py ends most messages with one), so
    the text reads well inside parentheses and before a semicolon.
    """
    text = str(exc).strip().removesuffix(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def records(count: int) -> str:
    """``1 record``, ``2 records``: a count of records as a line on stderr says it."""
    return f"{count} record" if count == 1 else f"{count} records"


def were(count: int) -> str:
    """``was`` for one, ``were`` for any other count."""
    return "was" if count == 1 else "were"


def report(kind: str, message: str, *, force: bool = False) -> bool:
    """Log one line about *kind* to stderr unless one was logged in the last interval.

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
        _logger.warning("%s%s", message, note)
    except Exception:
        return False
    return True


def _forget_in_child() -> None:
    global _lock
    _lock = allocate_lock()
    _last.clear()
    for handler in _logger.handlers:
        handler.createLock()  # a parent's thread may have held it at the fork


after_fork_in_child(_forget_in_child)
