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
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._fork import after_fork_in_child

__all__ = ["step_aside", "writer_sleeps"]

_turn = threading.Condition(threading.Lock())


def step_aside(still_needed: Callable[[], bool], timeout: float) -> None:
    """Wait up to *timeout* seconds for the writer's turn to end, if *still_needed()* (checked under the lock)."""
    with _turn:
        if still_needed():
            _turn.wait(timeout)


def writer_sleeps() -> None:
    """The runtime's loop is about to block: whoever stepped aside may go on."""
    with _turn:
        _turn.notify_all()


def _forget_in_child() -> None:
    global _turn
    _turn = threading.Condition(threading.Lock())


after_fork_in_child(_forget_in_child)
