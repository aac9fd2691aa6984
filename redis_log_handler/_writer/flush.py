"""Flush: callers waiting until records reach Redis, and the time budget ``flush()`` and ``close()`` share.

A flush waits for a *position*: the number of records appended to the buffer
when it was called. The drain task settles the waiters after every round trip,
given how many records have left the handler (written, or dropped and counted)
and how many were lost so far: a flush returns False if records were lost
since the previous flush finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis_log_handler._shared.native import Reply

__all__ = ["Flushes", "Request"]

Request = Callable[[], "Reply[bool] | bool"]
"""Registers a flush with the drain task: a reply to wait on, or the answer when there is nothing to wait for."""


class Flushes:
    """The flush requests waiting for one handler's drain task, and its shared flush/close deadline."""

    def __init__(self, close_timeout: float) -> None:
        self._close_timeout = close_timeout
        # (position, losses when requested, reply), settled on the runtime loop only.
        self._waiters: list[tuple[int, int, Reply[bool]]] = []
        # Losses a finished flush has already reported: a flush returns False only for newer ones.
        self._losses_reported = 0
        self._budget_deadline: float | None = None

    # ------------------------------------------------------ runtime loop

    def add(self, position: int, reply: Reply[bool]) -> None:
        """Wait for *position* (settled by the next :meth:`settle`)."""
        if not reply.done():
            self._waiters.append((position, self._losses_reported, reply))

    @property
    def waiting(self) -> bool:
        """Whether any flush is waiting (the drain task then writes partial batches at once)."""
        return bool(self._waiters)

    def settle(self, completed: int, losses: int) -> None:
        """Answer the waiters whose position *completed* has reached: True unless records were lost meanwhile."""
        pending = []
        for position, losses_before, reply in self._waiters:
            if reply.done():  # cancelled by a caller that timed out
                continue
            if completed >= position:
                self._losses_reported = losses
                reply.answer(losses == losses_before)
            else:
                pending.append((position, losses_before, reply))
        self._waiters = pending

    # ----------------------------------------------------- calling threads

    def budget(self, now: float) -> float:
        """The deadline shared by ``flush(None)`` and ``close()``.

        ``logging.shutdown`` calls flush() then close(): while Redis is down the
        two together must not take more than close_timeout, so a close that
        follows a timed-out flush within close_timeout gets no fresh budget.
        """
        deadline = self._budget_deadline
        if deadline is None or now > deadline + self._close_timeout:
            deadline = self._budget_deadline = now + self._close_timeout
        return deadline

    def _deadline(self, timeout: float | None) -> float:
        now = time.monotonic()
        return now + max(0.0, timeout) if timeout is not None else self.budget(now)

    def flush(self, timeout: float | None, request: Request) -> bool:
        """Block until the request is answered or the deadline passes (False then).

        Under gevent or eventlet the wait yields to the hub (see ``_shared.native``).
        """
        deadline = self._deadline(timeout)
        reply = request()
        if isinstance(reply, bool):
            return reply
        if not reply.wait(deadline - time.monotonic()) and reply.cancel():
            return False
        done = bool(reply.value)
        if done and timeout is None:
            self._budget_deadline = None
        return done

    async def aflush(self, timeout: float | None, request: Request) -> bool:
        """The same as :meth:`flush`, awaited on the caller's own event loop."""
        deadline = self._deadline(timeout)
        reply = request()
        if isinstance(reply, bool):
            return reply
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bool] = loop.create_future()
        reply.on_answer(lambda value: _settle_from_another_thread(loop, answered, value))
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                done = await answered
        except TimeoutError:
            if reply.cancel():
                return False
            done = bool(reply.value)
        if done and timeout is None:
            self._budget_deadline = None
        return done


def _settle_from_another_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future[bool], value: bool) -> None:
    def settle() -> None:
        if not future.done():
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's loop closed meanwhile: nobody waits any more
        pass
