"""The operating system's own threads, locks and sockets, whatever gevent or eventlet has patched.

gevent's ``monkey.patch_all()`` (gunicorn ``-k gevent``, Celery ``-P gevent``)
and eventlet's ``monkey_patch()`` replace the standard library's threads,
locks, sockets and selectors with cooperative ones that run as greenlets on
the patching thread's hub. The runtime must not be one of them: its event loop
blocks in ``epoll``, and a greenlet that blocks starves the hub (every request
of the worker hangs). So the runtime's thread, everything it shares with the
application's threads, and its sockets are the originals, which both libraries
keep reachable (``gevent.monkey.get_original``, ``eventlet.patcher.original``).
Without either library, or before it patched, the originals are simply the
standard library's own.

Waiting: an application thread that waits on the runtime for long (``flush``,
``close``, ``overflow="block"``) goes through :func:`wait_lock` with
``cooperative=True``: in a patched process it waits in slices of at most
:data:`SLICE` seconds and yields to the hub between them, so the worker's
other greenlets keep running; elsewhere it blocks as usual. Back-pressure's
wait (at most a millisecond) blocks in both cases: that wait is the point.

This module imports nothing from the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import selectors
import sys
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = [
    "SLICE",
    "Condition",
    "NativeThread",
    "Reply",
    "allocate_lock",
    "default_selector",
    "get_ident",
    "original",
    "patched",
    "wait_lock",
]

_T = TypeVar("_T")

SLICE = 0.005
"""The longest a cooperative wait blocks its OS thread before it lets other greenlets run."""


def original(module: str, name: str) -> Any:
    """The standard library's own ``module.name``, as it was before gevent or eventlet patched it."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None:
        return gevent_monkey.get_original(module, name)
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None:
        return getattr(eventlet_patcher.original(module), name)
    return getattr(importlib.import_module(module), name)


def patched() -> bool:
    """Whether gevent or eventlet has made this process's threads cooperative."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        return True
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    return eventlet_patcher is not None and bool(eventlet_patcher.is_monkey_patched("thread"))


def default_selector() -> type[selectors.BaseSelector]:
    """The platform's best selector class (epoll on Linux) on the original ``select`` module."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None:
        chosen: type[selectors.BaseSelector] = gevent_monkey.get_original("selectors", "DefaultSelector")
        return chosen
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is None or not eventlet_patcher.is_monkey_patched("select"):
        return selectors.DefaultSelector
    # eventlet removes select.epoll, and its original("selectors") is built on the green select: build a
    # private copy of the selectors module on the original one.
    green = sys.modules["select"]
    sys.modules["select"] = eventlet_patcher.original("select")
    try:
        spec = importlib.util.find_spec("selectors")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.modules["select"] = green
    green_free: type[selectors.BaseSelector] = module.DefaultSelector
    return green_free


def allocate_lock() -> Any:
    """A lock of the operating system's, usable across OS threads (never a greenlet lock)."""
    return original("_thread", "allocate_lock")()


def get_ident() -> int:
    """The calling OS thread's identifier (gevent's patched ``get_ident`` names the greenlet instead)."""
    ident: int = original("_thread", "get_ident")()
    return ident


def wait_lock(lock: Any, timeout: float, *, cooperative: bool) -> bool:
    """Acquire *lock* within *timeout* seconds; returns whether it was acquired.

    *cooperative*: in a patched process, never block the OS thread for more than :data:`SLICE` at a time,
    and let the hub run between slices.
    """
    timeout = max(0.0, timeout)
    if not (cooperative and patched()):
        return bool(lock.acquire(True, timeout))
    deadline = time.monotonic() + timeout
    pause = time.sleep  # gevent's or eventlet's sleep here: it switches to the hub
    while not lock.acquire(False):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pause(min(SLICE, remaining))
    return True


class Condition:
    """``threading.Condition``'s ``wait`` and ``notify_all`` on native locks.

    ``threading.Condition`` allocates a lock for every waiter from whatever
    ``_thread.allocate_lock`` is at that moment: a greenlet lock once gevent
    patched, which the runtime's thread cannot release.
    """

    def __init__(self) -> None:
        self._allocate = original("_thread", "allocate_lock")
        self._lock = self._allocate()
        self._waiters: list[Any] = []

    def __enter__(self) -> Condition:
        self._lock.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def wait(self, timeout: float, *, cooperative: bool = False) -> bool:
        """With the condition held: release it, wait for :meth:`notify_all` or *timeout*, hold it again."""
        waiter = self._allocate()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        try:
            return wait_lock(waiter, timeout, cooperative=cooperative)
        finally:
            self._lock.acquire()
            try:
                self._waiters.remove(waiter)
            except ValueError:  # notified: notify_all removed it
                pass

    def notify_all(self) -> None:
        """With the condition held: wake every waiter."""
        for waiter in self._waiters:
            waiter.release()
        self._waiters.clear()


_PENDING, _ANSWERED, _CANCELLED = range(3)


class Reply(Generic[_T]):
    """One answer from the runtime's thread to an application thread that waits for it (a flush, a close).

    What ``concurrent.futures.Future`` does for them, on native locks: a
    Future's condition is a greenlet lock once gevent patched.
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._answered = allocate_lock()
        self._answered.acquire()  # released once, by answer() or cancel()
        self._state = _PENDING
        self._value: _T | None = None
        self._callbacks: list[Callable[[_T], None]] = []

    def answer(self, value: _T) -> bool:
        """Settle with *value*; False if it was already settled or cancelled."""
        with self._lock:
            if self._state != _PENDING:
                return False
            self._state = _ANSWERED
            self._value = value
            callbacks, self._callbacks = self._callbacks, []
            self._answered.release()
        for callback in callbacks:
            callback(value)
        return True

    def cancel(self) -> bool:
        """Give up waiting; False if the answer came first (then :attr:`value` holds it)."""
        with self._lock:
            if self._state != _PENDING:
                return self._state == _CANCELLED
            self._state = _CANCELLED
            self._answered.release()
        return True

    def done(self) -> bool:
        """Whether it was answered or cancelled."""
        return self._state != _PENDING

    @property
    def value(self) -> _T | None:
        """The answer (None until answered)."""
        return self._value

    def wait(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds (cooperatively under gevent or eventlet); True once answered."""
        if self._state == _PENDING and wait_lock(self._answered, timeout, cooperative=True):
            self._answered.release()  # others may wait for the same reply
        return self._state == _ANSWERED

    def on_answer(self, callback: Callable[[_T], None]) -> None:
        """Call *callback* with the answer, on the answering thread (now, if it has come)."""
        with self._lock:
            if self._state == _PENDING:
                self._callbacks.append(callback)
                return
            answered = self._state == _ANSWERED
        if answered:
            callback(self._value)  # type: ignore[arg-type] # answered: the value is set


class NativeThread:
    """A daemon OS thread, started with the original ``_thread.start_new_thread``; joinable."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._finished = allocate_lock()
        self._finished.acquire()
        self._target = target
        self.ident: int = original("_thread", "start_new_thread")(self._run, ())

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._finished.release()

    def join(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the thread to finish (cooperatively); True if it did."""
        if wait_lock(self._finished, timeout, cooperative=True):
            self._finished.release()
            return True
        return False
