"""A transport that keeps what it is sent in memory, with scripted faults: a handler tested with no server.

:class:`InMemoryTransport` plays the server: pass it as a handler's
``transport`` and every batch the handler writes lands in its memory, one
document per record, in the order the server would have them. Each write
first takes the next scripted fault, if any (:meth:`InMemoryTransport.fail_next`):

- ``"unreachable"``: the connection is refused; nothing is written;
- ``"lost_reply"``: the batches are written, then the connection drops before
  the reply (the writer cannot know: it sends them again);
- ``"stall"``: the write waits, as on a frozen server, until :meth:`InMemoryTransport.release`
  (or the writer gives up);
- ``"not_replicated"``: with ``wait_replicas``, ``WAIT`` answers with too few replicas;
- ``"refused_trim"``: the batches are written, their trim or expiry (``maxlen``, ``ttl``) is refused;
- an exception (``redis.exceptions.ResponseError("OOM ...")``): every batch of the write gets that error reply;
- a list of exceptions or ``None``, one per batch: those batches get the error reply, the others are written.

It reads the documents out of the frames the handler sends (``resp.unframe``),
so what it captures is byte for byte what Redis would store.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from redis.exceptions import ResponseError

from redis_log_handler._shared.resp import unframe

from .protocol import OutcomeUnknown, ReplicationHistory, RoundTripReply, Transport

__all__ = ["Fault", "InMemoryTransport"]

Fault = (
    Literal["unreachable", "lost_reply", "stall", "not_replicated", "refused_trim"] | Exception | list[Exception | None]
)
_NAMED_FAULTS = ("unreachable", "lost_reply", "stall", "not_replicated", "refused_trim")
_TRIM_REFUSED = "NOPERM this user has no permissions to run the 'xtrim' command (scripted)"


class InMemoryTransport:
    """An in-memory stand-in for Redis behind real handlers: what they wrote, per key, and scripted faults.

    Thread-safe: the handlers write from their runtime loop while a test reads
    and scripts from its own thread. One instance may serve many handlers and keys.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[bytes]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._faults: deque[Fault] = deque()
        self._stalls: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.writes = 0  # round trips that reached it (faulty or not)

    def __call__(self, key: str) -> Transport:
        """A handler's transport to *key* (the ``transport`` parameter calls this on the runtime loop)."""
        return _Link(self, key)

    # ------------------------------------------------------------ what tests script and read

    def fail_next(self, fault: Fault, *, times: int = 1) -> None:
        """Make each of the next *times* writes meet *fault* (see the module docstring)."""
        if not isinstance(fault, Exception | list) and fault not in _NAMED_FAULTS:
            raise ValueError(f"fault must be one of {_NAMED_FAULTS}, an exception or a list of them, got {fault!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times!r}")
        with self._lock:
            self._faults.extend([fault] * times)

    def release(self) -> None:
        """End every stall now: the stalled writes go on (and are written)."""
        with self._lock:
            stalls, self._stalls = self._stalls, []
        for loop, event in stalls:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    @property
    def stalled(self) -> int:
        """Writes waiting on a ``"stall"`` now."""
        with self._lock:
            return len(self._stalls)

    def raw(self, key: str = "logs") -> list[bytes]:
        """The documents written to *key*, oldest first, as the handler encoded them."""
        with self._lock:
            return list(self._entries.get(key, ()))

    def documents(self, key: str = "logs") -> list[dict[str, Any]]:
        """The documents written to *key*, oldest first, decoded."""
        return [json.loads(document) for document in self.raw(key)]

    def messages(self, key: str = "logs") -> list[str]:
        """The ``message`` of each document written to *key*, oldest first."""
        return [document["message"] for document in self.documents(key)]

    def heartbeats(self, hash_key: str) -> dict[str, str]:
        """The heartbeat fields of *hash_key* (``<key>:producers``)."""
        with self._lock:
            return dict(self._hashes.get(hash_key, {}))

    # ------------------------------------------------------------ what a link does

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    async def _stall(self) -> None:
        stall = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._stalls.append(stall)
        try:
            await stall[1].wait()
        finally:  # released, or the writer gave up
            with self._lock:
                if stall in self._stalls:
                    self._stalls.remove(stall)

    def _append(self, key: str, batches: Sequence[Sequence[bytes]], errors: Sequence[Exception | None]) -> None:
        with self._lock:
            entries = self._entries.setdefault(key, [])
            for batch, error in zip(batches, errors, strict=True):
                if error is None:
                    entries.extend(unframe(framed) for framed in batch)

    def _set_field(self, hash_key: str, field: str, value: str | None) -> None:
        with self._lock:
            fields = self._hashes.setdefault(hash_key, {})
            if value is None:
                fields.pop(field, None)
            else:
                fields[field] = value


class _Link:
    """One handler's transport to one key of an :class:`InMemoryTransport`."""

    def __init__(self, memory: InMemoryTransport, key: str) -> None:
        self._memory = memory
        self._key = key
        self._stalled = False
        self.generation = 1
        self.history: ReplicationHistory = ("in-memory", "")
        self.idempotent = False

    @property
    def connected(self) -> bool:
        return True

    def can_resume(self) -> bool:
        return not self._stalled  # a stalled write waits on the server: the caller must not wait for it

    async def prepare(self) -> None:
        return None

    async def write(self, batches: Sequence[Sequence[bytes]]) -> RoundTripReply:
        memory = self._memory
        with memory._lock:
            memory.writes += 1
        fault = memory._next_fault()
        if fault == "unreachable":
            raise ConnectionError("in-memory transport: connection refused (scripted)")
        if fault == "stall":
            self._stalled = True
            try:
                await memory._stall()
            finally:
                self._stalled = False
        errors: list[Exception | None] = [None] * len(batches)
        if isinstance(fault, Exception):
            errors = [fault] * len(batches)
        elif isinstance(fault, list):
            errors = [*fault, *[None] * len(batches)][: len(batches)]
        memory._append(self._key, batches, errors)
        if fault == "lost_reply":
            raise OutcomeUnknown("in-memory transport: connection lost before the reply (scripted)")
        upkeep: list[Exception] = []
        if fault == "refused_trim":
            upkeep = [ResponseError(_TRIM_REFUSED) for error in errors if error is None]
        return RoundTripReply(errors, replicated=fault != "not_replicated", upkeep_errors=upkeep)

    async def beat(self, hash_key: str, field: str, value: str, now: float) -> None:
        self._memory._set_field(hash_key, field, value)

    async def forget(self, hash_key: str, field: str) -> None:
        self._memory._set_field(hash_key, field, None)

    async def close(self) -> None:
        return None
