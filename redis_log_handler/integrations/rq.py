"""RQ: a work horse writes its records before it exits.

RQ's default ``Worker`` forks a work horse per job, which ends with
``os._exit`` once the job is done: no ``atexit`` hook runs, so records the
job logged (and RQ's own "job failed" traceback) would be lost with the
buffer. Here the horse calls :func:`redis_log_handler.flush_all` after the
job, success or failure, before RQ ends it::

    rq worker --worker-class redis_log_handler.integrations.rq.Worker

A worker class of your own gets the same from the mixin, placed first::

    class MyWorker(FlushAfterJob, rq.Worker): ...

Workers that run jobs in their own process (``SimpleWorker``) need neither:
their process exits normally.
"""

from __future__ import annotations

from typing import Any

import rq

from redis_log_handler import flush_all

__all__ = ["FlushAfterJob", "Worker"]


class FlushAfterJob:
    """Mixin for an RQ worker class: in a work horse, flush every handler after each job."""

    flush_timeout: float | None = None
    """Seconds the horse waits for its records after a job; None: the longest ``close_timeout``."""

    _flush_after_job = False  # set in the work horse only

    def main_work_horse(self, *args: Any, **kwargs: Any) -> Any:
        """RQ's horse entry point, in the forked child: mark it, then run the job as RQ does."""
        self._flush_after_job = True
        return super().main_work_horse(*args, **kwargs)  # type: ignore[misc]

    def perform_job(self, *args: Any, **kwargs: Any) -> Any:
        """Run the job as RQ does; in a horse, flush before RQ calls ``os._exit``."""
        try:
            return super().perform_job(*args, **kwargs)  # type: ignore[misc]
        finally:
            if self._flush_after_job:
                flush_all(self.flush_timeout)


class Worker(FlushAfterJob, rq.Worker):
    """RQ's forking worker whose work horses write their records before they exit."""
