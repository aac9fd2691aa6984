"""SIGTERM where a server ends the process by the signal's default action: every handler is closed first.

uvicorn (its command line, ``uvicorn.run``, ``--workers N``, gunicorn's uvicorn
worker classes) shuts down gracefully on SIGTERM, then puts back the SIGTERM
handler it found when it started and raises the signal again: with Python's
default that ends the process on the spot, no exit hook runs, and what the
handlers still buffer is lost without a line. hypercorn's master, once one of
its ``--workers`` has exited, terminates the others, which keep Python's default.

In a process one of them runs, such a SIGTERM still ends the process the way it
would have, but only once every handler is closed (what it buffered written
within ``close_timeout``, the rest kept on disk or named on stderr). Signal
handlers can only be set on the main thread, so :func:`prepare_for_sigterm`
looks there when a handler is created and when the runtime starts:

- **uvicorn's handler is installed** (the application is imported inside
  ``Server.serve``): it is wrapped. At SIGTERM the wrapper blocks SIGTERM on the
  main thread and calls uvicorn's handler: uvicorn shuts down as usual, and the
  signal it raises again afterwards waits. A watcher thread sees uvicorn put back
  the handler it found (its shutdown is over), closes every handler and delivers
  the signal once, to the process, under whatever disposition is then in force.
  If the main thread reaches interpreter exit first, its exit hook does the same.
- **SIGTERM has Python's default** and uvicorn or hypercorn runs the process: a
  handler that closes every handler and then ends the process by the default
  action takes its place (uvicorn finds it when it starts serving and raises
  into it at the end of its shutdown).

A process neither server runs is left alone, and so is a SIGTERM handler the
application (or another server) installed.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from types import FrameType
from typing import Any

from redis_log_handler._shared.diagnostics import report
from redis_log_handler._shared.native import NativeThread, allocate_lock, original

from .exit import close_all
from .live import live_handlers

__all__ = ["prepare_for_sigterm"]

_WATCH_INTERVAL = 0.02  # seconds between two looks at whether uvicorn's shutdown is over
_CLOSE_MARGIN = 2.0  # seconds a SIGTERM waits past the longest close_timeout (the runtime's teardown, and more)
_HYPERCORN_WORKERS = ("hypercorn.asyncio.run", "hypercorn.trio.run")
_UNPREPARED = (
    "{server} ends this process by SIGTERM's default action, which runs no exit hook, and the handler can only "
    "prepare for it on the main thread, where it has not been used yet: records still buffered at a stop "
    "would be lost; create the handler on the main thread (at import, or in the logging configuration), or "
    "call redis_log_handler.flush_all() at the end of the application's lifespan shutdown"
)

_prepared_pid = 0  # the process whose SIGTERM was looked at (a forked child looks again)


def prepare_for_sigterm(*, first_record: bool = False) -> None:
    """In a process uvicorn or hypercorn runs, make SIGTERM close every handler before the process ends.

    Cheap after the first call in a process. Never raises. *first_record*: called as the runtime starts,
    on the thread of the first record, the last chance to say that nothing could be prepared.
    """
    global _prepared_pid
    if _prepared_pid == os.getpid():
        return
    server = _server()
    if server is None:
        return
    current = signal.getsignal(signal.SIGTERM)
    uvicorn_serving = _is_uvicorn_handler(current)
    if (not uvicorn_serving and current != signal.SIG_DFL) or not hasattr(signal, "pthread_sigmask"):
        _prepared_pid = os.getpid()  # the application's own handler decides what SIGTERM does (or: not POSIX)
        return
    try:
        signal.signal(signal.SIGTERM, _AfterUvicorn(current) if uvicorn_serving else _close_then_terminate)
    except ValueError:  # not the main thread
        if first_record:
            report("sigterm", _UNPREPARED.format(server=server))
        return
    except Exception as exc:  # an interpreter without signals, say: SIGTERM stays as it was
        report("sigterm", f"cannot prepare SIGTERM for {server}: {exc!r}")
    _prepared_pid = os.getpid()


def _server() -> str | None:
    """The server whose SIGTERM ends this process by the default action, if one was imported."""
    if "uvicorn.server" in sys.modules:
        return "uvicorn"
    if any(name in sys.modules for name in _HYPERCORN_WORKERS):
        return "hypercorn"
    return None


def _is_uvicorn_handler(handler: Any) -> bool:
    """Whether *handler* is a uvicorn ``Server``'s own (installed while it serves)."""
    server_class = getattr(sys.modules.get("uvicorn.server"), "Server", None)
    return server_class is not None and isinstance(getattr(handler, "__self__", None), server_class)


def _longest_close() -> float:
    return max((handler.settings.close_timeout for handler in live_handlers()), default=0.0)


def _close_then_terminate(signum: int, _: FrameType | None) -> None:
    """SIGTERM's default action, once every handler is closed."""
    # close_all runs on a thread of its own: this one may have been interrupted holding a lock it needs.
    NativeThread(close_all).join(_longest_close() + _CLOSE_MARGIN)
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    signal.raise_signal(signum)


class _AfterUvicorn:
    """SIGTERM's handler while uvicorn serves: uvicorn's own, and its signal raised again held until the close."""

    def __init__(self, uvicorn_handler: Any) -> None:
        self._uvicorn_handler = uvicorn_handler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        _held.hold(signum, self)
        self._uvicorn_handler(signum, frame)


class _HeldSignal:
    """The signal uvicorn raises again after its shutdown, held on the main thread until every handler is closed.

    Delivered once: by the watcher, to the process (any thread that does not block it takes it), or by the
    main thread's exit hook, which unblocks it there.
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._signum = 0
        self._pid = 0
        self._delivered = False

    def hold(self, signum: int, handler: _AfterUvicorn) -> None:
        """On the main thread, in the signal handler: block *signum* there; the first time, watch for the end."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
        if self._pid == os.getpid():
            return
        self._signum, self._pid, self._delivered = signum, os.getpid(), False
        atexit.register(self._close_then_release)  # runs before the exit hook that closes the handlers
        NativeThread(lambda: self._watch(handler))

    def _watch(self, handler: _AfterUvicorn) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {self._signum})  # this thread may take the signal
        sleep = original("time", "sleep")
        while signal.getsignal(self._signum) is handler:  # uvicorn puts its predecessor back once it is done
            sleep(_WATCH_INTERVAL)
        close_all()
        if self._claim():
            os.kill(os.getpid(), self._signum)

    def _close_then_release(self) -> None:
        """At interpreter exit, on the main thread: close every handler, then let the held signal through."""
        close_all()
        if not self._claim():  # the watcher delivered it: drop the copy held here
            sigtimedwait = getattr(signal, "sigtimedwait", None)
            if sigtimedwait is not None:
                sigtimedwait({self._signum}, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {self._signum})

    def _claim(self) -> bool:
        with self._lock:
            first = not self._delivered
            self._delivered = True
        return first


_held = _HeldSignal()
