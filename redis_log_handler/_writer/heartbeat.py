"""The fleet view: each handler's counters in one hash per key, refreshed from the runtime loop.

With ``heartbeat=<seconds>``, every handler writes one field of the hash
``<key>:producers`` every that many seconds: the field is
``<producer id>.<handler number>`` (the producer id of its records' ids, and
which handler of the process it is), the value a JSON object with the
counters of ``stats()``, the rate of records written since the previous beat,
host, pid, key, mode, the static ``fields``, the library version, the interval
and ``seen_at`` (POSIX time). A handler removes its field when it closes. A
producer that died without closing stops beating: ``redis-log-handler status``
shows it as stale after three intervals, and each beat removes fields that have
not been refreshed for ten of their intervals (one script call, atomic).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from redis_log_handler._schema.document import HOST, producer_id
from redis_log_handler._shared.diagnostics import describe, report
from redis_log_handler._shared.version import VERSION

from .settings import WriterSettings
from .transport.protocol import Transport

__all__ = ["STALE_AFTER", "Heartbeat", "producers_key"]

STALE_AFTER = 3  # intervals without a beat before a producer shows as stale
_COUNTERS = (
    "accepted", "written", "dropped", "dropped_overflow", "dropped_closed", "dropped_error", "dropped_internal",
    "buffered", "retries", "errors", "spill_bytes", "connected", "last_error", "oldest_buffered_age",
)  # fmt: skip
_handler_numbers = itertools.count(1)


def producers_key(key: str) -> str:
    """The hash holding the heartbeats of the handlers writing to *key*."""
    return f"{key}:producers"


class Heartbeat:
    """One handler's beats: a task on the runtime loop, and the removal of its field at close."""

    def __init__(self, settings: WriterSettings, stats: Callable[[], dict[str, Any]]) -> None:
        assert settings.heartbeat is not None
        self._settings = settings
        self._interval = settings.heartbeat
        self._stats = stats
        self._number = next(_handler_numbers)
        self._previous: tuple[float, int] | None = None  # (time, written) at the last beat

    @property
    def field(self) -> str:
        """This handler's field in the hash (the producer id changes in a forked child)."""
        return f"{producer_id()}.{self._number}"

    def value(self, now: float) -> str:
        """The JSON value of this handler's field now."""
        stats = self._stats()
        written = stats["written"]
        rate = None
        if self._previous is not None and now > self._previous[0]:
            rate = (written - self._previous[1]) / (now - self._previous[0])
        self._previous = (now, written)
        s = self._settings
        return json.dumps(
            {
                **{name: stats[name] for name in _COUNTERS},
                "rate": rate,
                "host": HOST,
                "pid": os.getpid(),
                "producer": producer_id(),
                "key": s.key,
                "mode": s.mode,
                "fields": s.fields,
                "version": VERSION,
                "interval": self._interval,
                "seen_at": now,
            },
            default=str,
        )

    async def run(self, transport: Transport) -> None:
        """Beat every interval until cancelled; a failed beat is reported and the next one tried."""
        hash_key = producers_key(self._settings.key)
        while True:
            now = time.time()
            try:
                await transport.beat(hash_key, self.field, self.value(now), now)
            except Exception as exc:  # Redis down: the records' path reports it too; beats resume with it
                report("heartbeat", f"heartbeat for {self._settings.key!r} failed ({describe(exc)})")
            await asyncio.sleep(self._interval)

    async def remove(self, transport: Transport) -> None:
        """Remove this handler's field (it closes)."""
        try:
            await transport.forget(producers_key(self._settings.key), self.field)
        except Exception as exc:
            report("heartbeat", f"could not remove the heartbeat of {self._settings.key!r} ({describe(exc)})")
