"""When a failed Redis command is tried again, and how long to wait first: one table and one backoff for both sides.

The table sorts the server's replies into transient trouble (try again later)
and refusals that can never work; the writer and the reader each apply it
their way (:func:`classify` for a batch's write, :func:`transient` for a read).
Adding a transient reply is one line. The wait between tries is redis-py's
capped exponential backoff with full jitter.
"""

from __future__ import annotations

import enum

import redis.exceptions
from redis.backoff import FullJitterBackoff

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "Outcome", "classify", "retry_delay", "transient"]

BACKOFF_BASE = 0.05  # seconds; the first retry waits up to twice this
BACKOFF_CAP = 5.0
_BACKOFF = FullJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)
# Past this many failures the cap holds anyway. A larger count overflows a float (``2.0**1024``) where the delay
# is computed as ``base * 2**failures`` (redis-py's older releases; this package's own code did, until 1,024
# retries in a row, about 40 minutes into an outage, ended the drain task).
_FAILURES_PAST_THE_CAP = 32


def retry_delay(failures: int) -> float:
    """Seconds to wait before the next try after *failures* (1, 2, ...) failures in a row."""
    return _BACKOFF.compute(min(failures, _FAILURES_PAST_THE_CAP))


class Outcome(enum.Enum):
    """What the writer does with a batch whose write failed."""

    RETRY = "retry"
    DROP = "drop"


# Server replies that mean "try again later" rather than "this can never work".
# redis-py turns the codes it knows into exception classes (and strips the
# code from the message); the others keep the code as the message's first word.
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(redis.exceptions, name)
    for name in (
        "ConnectionError",
        "TimeoutError",
        "OutOfMemoryError",
        "ReadOnlyError",
        "TryAgainError",
        "ClusterDownError",
        "MasterDownError",
        "AskError",  # MOVED too (a subclass): the key's slot moved in a cluster
    )
    if hasattr(redis.exceptions, name)
)
_TRANSIENT_CODES = frozenset(
    {
        "READONLY",
        "LOADING",
        "TRYAGAIN",
        "MASTERDOWN",
        "BUSY",
        "OOM",
        "CLUSTERDOWN",
        "NOREPLICAS",
        "MISCONF",
        "UNBLOCKED",  # a blocking read whose key's slot moved away while it waited
    }
)
# Connection errors in redis-py's hierarchy that retrying cannot fix.
_REFUSALS = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)


def transient(exc: BaseException) -> bool:
    """Whether *exc* is trouble that passes: a lost connection, a timeout, a server busy, loading, full, or
    failing over, a key whose slot moved; never a refused password or permission.
    """
    if isinstance(exc, _REFUSALS):
        return False
    if isinstance(exc, _TRANSIENT_ERRORS):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        words = str(exc).split()
        return bool(words) and words[0].upper() in _TRANSIENT_CODES
    return False


def classify(exc: BaseException) -> Outcome:
    """What the writer does with a batch whose write failed: transient trouble is retried, a configuration error
    drops the batch; anything unexpected (an unknown outcome too: the batch may have been written) is retried, as
    dropping is final.
    """
    if isinstance(exc, _REFUSALS):
        return Outcome.DROP
    if transient(exc) or not isinstance(exc, redis.exceptions.ResponseError):
        return Outcome.RETRY
    return Outcome.DROP
