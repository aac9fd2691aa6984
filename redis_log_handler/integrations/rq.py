"""RQ: a work horse writes its records before it exits.

RQ's default ``Worker`` forks a work horse per job, which ends with
``os._exit`` once the job is done: no ``atexit`` hook runs, so records the
job logged (and RQ's own "job failed" traceback) would be lost with the
buffer. Here the horse closes every handler after the job, success or
failure, before RQ ends it, as the exit hook would have done: what it
buffered is written (within ``close_timeout``), and what could not be is
kept on disk or named on stderr::

    rq worker --worker-class redis_log_handler.integrations.rq.Worker

A worker class of your own gets the same from the mixin, placed first::

    class MyWorker(FlushAfterJob, rq.Worker): ...

Workers that run jobs in their own process (``SimpleWorker``) need neither:
their process exits normally.
"""

from __future__ import annotations

from typing import Any

import rq

from redis_log_handler._writer.exit import close_all

__all__ = ["FlushAfterJob", "Worker"]


class FlushAfterJob:
    """Mixin for an RQ worker class: in a work horse, close every handler after each job (the horse ends next)."""

    flush_timeout: float | None = None
    """Seconds the horse waits for its records after a job; None: each handler's ``close_timeout``."""

    _flush_after_job = False  # set in the work horse only

    def main_work_horse(self, *args: Any, **kwargs: Any) -> Any:
        """RQ's horse entry point, in the forked child: mark it, then run the job as RQ does."""
        self._flush_after_job = True
        return super().main_work_horse(*args, **kwargs)  # type: ignore[misc]

    def perform_job(self, *args: Any, **kwargs: Any) -> Any:
        """Run the job as RQ does; in a horse, close every handler before RQ calls ``os._exit``."""
        try:
            return super().perform_job(*args, **kwargs)  # type: ignore[misc]
        finally:
            if self._flush_after_job:
                close_all(self.flush_timeout)


class Worker(FlushAfterJob, rq.Worker):
    """RQ's forking worker whose work horses write their records before they exit."""
