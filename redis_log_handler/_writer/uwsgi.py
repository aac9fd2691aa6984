"""uWSGI: where a Python thread must not run, and where Python threads do not run between requests.

By default uWSGI's master imports the application and then forks its workers
from C without Python's fork hooks (``PyOS_AfterFork_Child``), after releasing
the GIL. A Python thread running in the master at that moment may hold the
GIL: the worker is then born with a GIL owned by a thread it does not have,
and hangs before it runs a line of Python (every request times out, SIGTERM
cannot stop it). So in such a master the runtime's thread is never started
(nor does uWSGI's master run Python's exit hooks): the master's records wait
in its buffer for a worker (below). ``--lazy-apps`` (the application is loaded
in each worker) and ``--py-call-uwsgi-fork-hooks`` (the worker's GIL is made
anew) let the master start it as anywhere else.

Those records are also in every worker's copy of the master's memory, and
one worker writes them: worker 1, once. Its generations never overlap, and a
byte of memory shared with the master (``mmap``, inherited by every worker)
says whether one of them has taken the records over, so a respawned worker 1
does not write them again.

uWSGI's brutal stop (SIGTERM with ``--die-on-term``, SIGINT, SIGQUIT; SIGTERM
without it is a brutal reload) ends each worker with ``exit()`` from a signal
handler, and a worker busy with a request at that moment skips Python's exit
hooks (``uwsgi_python_atexit`` returns early): what it had not written yet is
lost. Its graceful stop (``--hook-master-start "unix_signal:15
gracefully_kill_them_all"``, or ``q`` on the master FIFO) lets each worker
finish its request and run them. Without either, the first process that logs
says so once.

Outside uWSGI (``import uwsgi`` fails) threads are always allowed.
"""

from __future__ import annotations

import importlib
import mmap
from typing import Any

from redis_log_handler._shared.diagnostics import report

__all__ = [
    "THREADS_REFUSED",
    "ThreadsRefused",
    "keep_for_a_worker",
    "takes_over_master_records",
    "threads_allowed",
    "warn_brutal_stop",
    "warn_without_threads",
]

THREADS_REFUSED = (
    "uWSGI's master forks its workers without Python's fork hooks, so no thread may run in it: records logged "
    "in the master are written by worker 1 when it first logs or exits; run uWSGI with --py-call-uwsgi-fork-hooks (or "
    "--lazy-apps) to have them written by the master itself"
)
_WITHOUT_THREADS = (
    "uWSGI runs this worker without Python threads: records are written only while a request runs and at exit; "
    "run uWSGI with --enable-threads"
)
_BRUTAL_STOP = (
    "uWSGI stops a worker that is busy with a request without Python's exit hooks (SIGTERM with --die-on-term, "
    "SIGINT, SIGQUIT): records it has not written yet are lost; run uWSGI with --hook-master-start "
    '"unix_signal:15 gracefully_kill_them_all" to make SIGTERM a graceful stop (or stop it with q on its master FIFO)'
)
_GRACEFUL_STOP = "gracefully_kill_them_all"
_FORK_HOOK_OPTIONS = ("py-call-uwsgi-fork-hooks", "py-call-osafterfork")

_taken_over: mmap.mmap | None = None  # made in the master: byte 0 is 1 once a worker took its records over
_takes_over: bool | None = None  # this worker's decision, made once
_brutal_stop_said = False  # inherited by forked workers: the master's line is the server's line


class ThreadsRefused(RuntimeError):
    """No thread may start in this process now (uWSGI's preforking master)."""


def _uwsgi() -> Any:
    try:
        return importlib.import_module("uwsgi")  # built into the uwsgi binary: importable only inside it
    except ImportError:
        return None


def threads_allowed() -> bool:
    """False in a uWSGI master that forks its workers without Python's fork hooks."""
    uwsgi = _uwsgi()
    if uwsgi is None:
        return True
    options = getattr(uwsgi, "opt", {})
    if any(options.get(name) for name in _FORK_HOOK_OPTIONS):
        return True
    return bool(uwsgi.worker_id() != 0)


def keep_for_a_worker() -> None:
    """In the master: its records stay buffered for worker 1 to write (see the module's docstring)."""
    global _taken_over
    if _taken_over is None:
        _taken_over = mmap.mmap(-1, 1)  # anonymous and shared: every worker forked later sees the same byte


def takes_over_master_records() -> bool:
    """In a worker: whether it writes the records the master buffered (worker 1, the first time only)."""
    global _takes_over
    if _takes_over is None:
        uwsgi = _uwsgi()
        claim = _taken_over is not None and uwsgi is not None and uwsgi.worker_id() == 1 and _taken_over[0] == 0
        if claim and _taken_over is not None:
            _taken_over[0] = 1
        _takes_over = claim
    return _takes_over


def warn_without_threads() -> None:
    """Say once on stderr if uWSGI keeps the GIL between requests (no ``--enable-threads``)."""
    uwsgi = _uwsgi()
    if uwsgi is not None and not getattr(uwsgi, "has_threads", 1):
        report("uwsgi-threads", _WITHOUT_THREADS)


def warn_brutal_stop() -> None:
    """Say once (in the master or worker 1) if uWSGI has no graceful stop configured (see the docstring)."""
    global _brutal_stop_said
    uwsgi = _uwsgi()
    if uwsgi is None or _brutal_stop_said or uwsgi.worker_id() > 1:
        return
    _brutal_stop_said = True
    options = getattr(uwsgi, "opt", {})
    hooks = options.get("hook-master-start") or []
    hooks = [hooks] if isinstance(hooks, (str, bytes)) else hooks
    graceful = any(_GRACEFUL_STOP in (hook.decode() if isinstance(hook, bytes) else hook) for hook in hooks)
    if not graceful and not options.get("master-fifo"):
        report("uwsgi-stop", _BRUTAL_STOP)
