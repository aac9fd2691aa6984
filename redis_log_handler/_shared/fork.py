"""Forgetting the parent's state in a forked child, whether or not the fork ran Python's at-fork hooks.

``os.fork()`` (and so multiprocessing, ProcessPoolExecutor and gunicorn) runs
one hook registered here with ``os.register_at_fork``, which runs every
callback of the registry in registration order. A fork made from C (an
extension calling ``fork()`` directly) runs no hook: the handler then notices
the new process id on the next record (see :func:`catch_up`) and runs the same
callbacks before touching anything it inherited.

The registry holds bound methods weakly, so a handler that is gone leaves
nothing behind; plain functions (module-level resets) are held for good. This
module imports nothing from the package: every other module may use it.
"""

from __future__ import annotations

import os
import types
import weakref
from collections.abc import Callable

__all__ = ["after_fork_in_child", "callbacks_registered", "catch_up", "current_pid"]

_registry: list[Callable[[], Callable[[], None] | None]] = []
_pid = os.getpid()


def current_pid() -> int:
    """The process id as of the last fork seen (no system call)."""
    return _pid


def after_fork_in_child(callback: Callable[[], None]) -> None:
    """Run *callback* in every forked child, in registration order, before the child logs anything.

    A bound method is held weakly: once its object is garbage-collected it is
    dropped from the registry.
    """
    if isinstance(callback, types.MethodType):
        _registry.append(weakref.WeakMethod(callback))
    else:
        _registry.append(lambda: callback)


def callbacks_registered() -> int:
    """How many live callbacks the registry holds (dead weak references are pruned first)."""
    _registry[:] = [reference for reference in _registry if reference() is not None]
    return len(_registry)


def catch_up() -> None:
    """In a child forked without at-fork hooks, run the callbacks now; otherwise do nothing.

    Such a child starts with the forking thread alone, and the callbacks record
    the new process id first, so they run once.
    """
    if os.getpid() != _pid:
        _run_callbacks()


def _run_callbacks() -> None:
    global _pid
    _pid = os.getpid()
    for reference in list(_registry):  # a copy: a callback may register more
        callback = reference()
        if callback is None:
            _registry.remove(reference)
        else:
            callback()


os.register_at_fork(after_in_child=_run_callbacks)
