"""``flush_all``: every handler of the process flushed under one deadline, for processes that end with ``os._exit``.

``os._exit`` runs no ``atexit`` hook, so the exit path that closes every
handler (``exit``) does not run: a work horse of RQ, a child of Celery's
prefork pool or any forked child that calls ``os._exit`` loses what it
buffered unless it flushes first.
"""

from __future__ import annotations

import time

from .live import live_handlers

__all__ = ["flush_all"]


def flush_all(timeout: float | None = None) -> bool:
    """Wait until every record accepted so far by every ``RedisHandler`` in this process is in Redis.

    One deadline for all of them: *timeout* seconds from now, or, for None, the
    longest ``close_timeout`` among them. Returns True once every handler's
    records are written, False if the deadline passed first or a record was
    dropped. Never raises for a handler's sake; safe from any thread.
    """
    handlers = live_handlers()
    if timeout is None:
        timeout = max((handler.settings.close_timeout for handler in handlers), default=0.0)
    deadline = time.monotonic() + max(0.0, timeout)
    written = True
    for handler in handlers:  # each writer drains on its own: waiting in turn costs no extra time
        written = handler.flush(max(0.0, deadline - time.monotonic())) and written
    return written
