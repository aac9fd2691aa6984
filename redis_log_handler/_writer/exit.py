"""Interpreter exit: every live handler closed at once under one deadline, then the runtime stopped.

Registered with ``atexit`` after ``logging`` is imported, so it runs before
``logging.shutdown`` (atexit runs hooks last-in, first-out): handlers close in
parallel (the exit takes the longest ``close_timeout``, not their sum) and
``logging.shutdown`` then finds them closed.

A child made by multiprocessing's fork start method ends with ``os._exit``,
which skips atexit hooks: there the same procedure runs from multiprocessing's
own exit finalizers. A child of Celery's prefork pool (billiard) ends with
``os._exit`` too, after Celery sends ``worker_process_shutdown`` in it: the
procedure runs from that signal. Anything else that ends with ``os._exit``
calls :func:`redis_log_handler.flush_all` first.
"""

from __future__ import annotations

import atexit
import logging  # noqa: F401 - imported first so its atexit shutdown runs after ours (LIFO)
import os
import sys
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from redis_log_handler._shared.diagnostics import report
from redis_log_handler._shared.fork import after_fork_in_child, catch_up

from .runtime import stop_runtime

__all__ = ["close_all", "register_closeable"]

_STOP_TIMEOUT = 1.0  # seconds to let the loop finish its own teardown at exit


class _Closeable(Protocol):
    def _begin_close(self, now: float, timeout: float | None = None) -> Callable[[], None]: ...


_closeables: weakref.WeakSet[_Closeable] = weakref.WeakSet()


def register_closeable(closeable: _Closeable) -> None:
    """Close *closeable* at interpreter exit (held weakly)."""
    _closeables.add(closeable)
    _close_at_multiprocessing_child_exit()


def close_all(timeout: float | None = None) -> None:
    """Close every live handler at once under one deadline, then stop the runtime.

    The deadline is *timeout* seconds from now, or each handler's ``close_timeout``. Safe to call again,
    from another thread or from a signal handler that interrupted it: a close under way is waited for,
    not skipped, so that the process does not end before it is done (and its losses are named).
    """
    catch_up()  # a child forked without at-fork hooks must not wait on its parent's runtime
    now = time.monotonic()
    finishers = []
    for closeable in list(_closeables):
        try:
            finishers.append(closeable._begin_close(now, timeout))
        except Exception as exc:  # never let one handler stop the others from closing
            report("exit", f"closing a handler at exit failed: {exc!r}")
    for finish in finishers:
        try:
            finish()
        except Exception as exc:
            report("exit", f"closing a handler at exit failed: {exc!r}")
    stop_runtime(_STOP_TIMEOUT)


atexit.register(close_all)


class _Token:
    """What multiprocessing's after-fork registry holds on to (it keeps weak references)."""


_token = _Token()
_registered_with_multiprocessing = False  # inherited: a lineage registers once


def _close_before_multiprocessing_exit() -> None:
    """In a forked child, make multiprocessing run :func:`close_all` before the child's ``os._exit``.

    multiprocessing clears its finalizer registry when the child starts, so the
    finalizer is registered from multiprocessing's own after-fork callbacks,
    which run after that.
    """
    global _registered_with_multiprocessing
    if _registered_with_multiprocessing or "multiprocessing" not in sys.modules:
        return
    _registered_with_multiprocessing = True
    import multiprocessing.util  # noqa: PLC0415 - already imported when this runs

    multiprocessing.util.register_after_fork(_token, _register_finalizer)


_finalizer_pid = 0  # the process that registered the finalizer below


def _close_at_multiprocessing_child_exit() -> None:
    """A handler made inside a multiprocessing child, whatever the start method: close from its finalizers.

    A forkserver child (and a fork child) ends with ``os._exit`` after multiprocessing runs its exit
    finalizers; the hook above misses a child whose package was first imported after its fork.
    """
    global _finalizer_pid
    multiprocessing = sys.modules.get("multiprocessing")
    if _finalizer_pid == os.getpid() or multiprocessing is None or multiprocessing.parent_process() is None:
        return
    _finalizer_pid = os.getpid()
    _register_finalizer(_token)


def _register_finalizer(_: _Token) -> None:
    import multiprocessing.util  # noqa: PLC0415

    multiprocessing.util.Finalize(None, close_all, exitpriority=100)


after_fork_in_child(_close_before_multiprocessing_exit)


def _close_at_celery_child_exit(**_: object) -> None:
    close_all()


def _close_before_celery_child_exit() -> None:
    """In a forked child of a Celery worker: close every handler when Celery says the pool process exits."""
    signals = sys.modules.get("celery.signals")
    if signals is not None:
        signals.worker_process_shutdown.connect(_close_at_celery_child_exit, weak=False)


after_fork_in_child(_close_before_celery_child_exit)
