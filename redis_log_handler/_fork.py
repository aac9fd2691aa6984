"""Forgetting the parent's state in a forked child, whether or not the fork ran Python's at-fork hooks.

``os.fork()`` (and so multiprocessing, ProcessPoolExecutor and gunicorn) runs
the callbacks registered here through ``os.register_at_fork``. A fork made
from C (an extension calling ``fork()`` directly) runs none: the handler then
notices the new process id on the next record (see :func:`catch_up`) and runs
the same callbacks before touching anything it inherited.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["after_fork_in_child", "catch_up", "current_pid"]

_callbacks: list[Callable[[], None]] = []
_pid = os.getpid()


def current_pid() -> int:
    """The process id as of the last fork seen (no system call)."""
    return _pid


def after_fork_in_child(callback: Callable[[], None]) -> None:
    """Run *callback* in every forked child, in registration order, before the child logs anything."""
    _callbacks.append(callback)
    os.register_at_fork(after_in_child=callback)


def catch_up() -> None:
    """In a child forked without at-fork hooks, run the callbacks now; otherwise do nothing.

    Such a child starts with the forking thread alone, and the first callback
    records the new process id, so the callbacks run once.
    """
    if os.getpid() != _pid:
        for callback in list(_callbacks):
            callback()


def _new_process() -> None:
    global _pid
    _pid = os.getpid()
    if "multiprocessing" in sys.modules:
        _close_before_multiprocessing_exit()


class _Token:
    """What multiprocessing's after-fork registry holds on to (it keeps weak references)."""


_token = _Token()
_registered_with_multiprocessing = False  # inherited: a lineage registers once


def _close_before_multiprocessing_exit() -> None:
    """Make a multiprocessing child close its handlers before it ends.

    A child made by the fork start method ends with ``os._exit``, which skips
    atexit hooks; multiprocessing runs its own finalizers first. It clears
    their registry when the child starts, so the finalizer is registered from
    multiprocessing's own after-fork callbacks, which run after that.
    """
    global _registered_with_multiprocessing
    if _registered_with_multiprocessing:
        return
    _registered_with_multiprocessing = True
    import multiprocessing.util  # noqa: PLC0415 - already imported when this runs

    multiprocessing.util.register_after_fork(_token, _register_finalizer)


def _register_finalizer(_: _Token) -> None:
    import multiprocessing.util  # noqa: PLC0415

    from ._runtime import close_all  # noqa: PLC0415 - _runtime imports this module

    multiprocessing.util.Finalize(None, close_all, exitpriority=100)


after_fork_in_child(_new_process)
