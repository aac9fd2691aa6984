"""The runtime loop's wake-up socket: the operating system's, read once per wake-up, where asyncio is as expected.

Other threads wake an asyncio selector loop through a socket pair (its
"self-pipe"): ``call_soon_threadsafe`` writes a byte, the loop reads it. The
runtime changes two things about it, by overriding asyncio's private
``_make_self_pipe`` and ``_read_from_self``:

- the socket pair is the operating system's even where gevent or eventlet
  patched ``socket`` (theirs would need a hub on the runtime's thread);
- a wake-up is read in one ``recv`` where one suffices: asyncio reads until the
  socket says it is empty, a second call per wake-up that releases the GIL and
  costs the writer a hand-off under load.

Both are written for asyncio as it is in Python 3.11 to 3.13 (the Pythons the
project is tested on). Anywhere else, or where those internals are missing,
:data:`OWN_WAKEUP` is False and the loop keeps asyncio's own wake-up: it works
the same, with one more read per wake-up, and (under gevent or eventlet) a
socket pair of theirs. :func:`report_wakeup` says once on stderr which path
runs when it is asyncio's.
"""

from __future__ import annotations

import asyncio.selector_events
import sys
from typing import Any

from redis_log_handler._shared.diagnostics import report
from redis_log_handler._shared.native import original

__all__ = ["OWN_WAKEUP", "WRITTEN_FOR", "own_make_self_pipe", "own_read_from_self", "report_wakeup"]

WRITTEN_FOR = ((3, 11), (3, 13))  # the Pythons whose asyncio internals the overrides copy
_WAKE_READ = 4096  # bytes read from the loop's wake-up socket at a time (one byte per wake-up)
_INTERNALS = ("_make_self_pipe", "_read_from_self", "_process_self_data", "_add_reader")


def _written_for(version: tuple[int, int]) -> bool:
    low, high = WRITTEN_FOR
    return low <= version <= high


OWN_WAKEUP = _written_for(sys.version_info[:2]) and all(
    hasattr(asyncio.selector_events.BaseSelectorEventLoop, name) for name in _INTERNALS
)


def own_make_self_pipe(loop: Any) -> None:
    """asyncio's own (3.11 to 3.13), with a socket pair of the operating system's."""
    loop._ssock, loop._csock = original("socket", "socketpair")()
    loop._ssock.setblocking(False)
    loop._csock.setblocking(False)
    loop._internal_fds += 1
    loop._add_reader(loop._ssock.fileno(), loop._read_from_self)


def own_read_from_self(loop: Any) -> None:
    """Empty the wake-up socket in one read where one suffices.

    A read shorter than asked took everything there was; a byte written after
    it makes the socket readable again at the next poll.
    """
    while True:
        try:
            data = loop._ssock.recv(_WAKE_READ)
        except InterruptedError:
            continue
        except BlockingIOError:
            return
        if not data:
            return
        loop._process_self_data(data)
        if len(data) < _WAKE_READ:
            return


def report_wakeup() -> None:
    """Say once on stderr that asyncio's own wake-up runs, when it does."""
    if OWN_WAKEUP:
        return
    low, high = WRITTEN_FOR
    report(
        "wakeup",
        f"Python {sys.version_info[0]}.{sys.version_info[1]}'s asyncio is not the one the runtime's wake-up was "
        f"written for ({low[0]}.{low[1]} to {high[0]}.{high[1]}): asyncio's own runs (one more read per wake-up; "
        "under gevent or eventlet its socket pair is theirs)",
    )
