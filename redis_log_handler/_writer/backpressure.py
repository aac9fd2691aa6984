"""Back-pressure under sustained load: logging threads step aside while the writer could run.

The writer runs on the runtime thread and needs the GIL several times per round
trip (every loop iteration releases it). A thread that wants the GIL waits up
to a switch interval (5 ms) before it even asks the holder to let go, and then
competes with every other thread that wants it: with many threads logging
without pause the writer gets too few turns, the buffer fills, and records are
dropped although Redis is idle.

So a logging thread that finds the backlog past the high-water mark, while the
writer could run, waits here (releasing the GIL) until the writer is done with
its turn: the runtime's event loop calls :func:`writer_sleeps` each time it is
about to block on its selector. The wait is bounded, and never happens while the
writer waits on Redis (the caller decides that): the logging call never waits
on Redis.

Where the writer's own state cannot tell (while it connects: resolving, the TCP
handshake, the first commands), :func:`loop_could_run` asks the loop instead:
it could run unless it is blocked in its selector with nothing ready and its
timeout not yet over. A loop whose socket event has come but which waits for the
GIL to notice is thus told apart from one waiting on Redis, without a guess at
how long connecting should take.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from redis_log_handler._shared.fork import after_fork_in_child
from redis_log_handler._shared.native import Condition

from .transport.writer_socket import ready_now

__all__ = ["loop_could_run", "loop_woke", "step_aside", "writer_sleeps"]

# Native (see _native): the runtime's thread notifies it. A wait blocks the OS thread, greenlets included: it
# lasts at most a millisecond, and giving the writer that time is the point.
_turn = Condition()
# While the runtime loop blocks in its selector: the selector's descriptor, and when the block's timeout
# ends (monotonic; inf for none). None while the loop runs. Written by the loop, read by logging threads.
_blocked: tuple[int, float] | None = None


def step_aside(still_needed: Callable[[], bool], timeout: float) -> None:
    """Wait up to *timeout* seconds for the writer's turn to end, if *still_needed()* (checked under the lock)."""
    with _turn:
        if still_needed():
            _turn.wait(timeout)


def writer_sleeps(selector_fd: int, timeout: float | None) -> None:
    """The runtime's loop is about to block on *selector_fd* for *timeout* seconds: whoever stepped aside may go on."""
    global _blocked
    _blocked = (selector_fd, math.inf if timeout is None else time.monotonic() + timeout)
    with _turn:
        _turn.notify_all()


def loop_woke() -> None:
    """The runtime's loop is back from its selector (with the GIL)."""
    global _blocked
    _blocked = None


def loop_could_run() -> bool:
    """Whether the runtime loop could run now: it is not blocked, or an event or its timeout has come.

    An event the loop has not handled yet keeps its selector readable (level-triggered), so a loop that
    woke up and waits for the GIL still counts as able to run.
    """
    return _could_run(_blocked)


def _could_run(blocked: tuple[int, float] | None) -> bool:
    if blocked is None:
        return True
    selector_fd, until = blocked
    if time.monotonic() >= until:
        return True
    return ready_now(selector_fd)


def _forget_in_child() -> None:
    global _turn, _blocked
    _turn = Condition()
    _blocked = None


after_fork_in_child(_forget_in_child)
