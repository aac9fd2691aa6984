"""What a failed write means: retry it (transient trouble, an unknown outcome) or drop the batch (it can never work).

A table of the server's transient replies, so that adding one is one line.
"""

from __future__ import annotations

import enum

import redis.exceptions

__all__ = ["Outcome", "classify"]


class Outcome(enum.Enum):
    """What the drain task does with a batch whose write failed."""

    RETRY = "retry"
    DROP = "drop"


# Server replies that mean "try again later" rather than "this can never work".
# redis-py turns the codes it knows into exception classes (and strips the
# code from the message); the others keep the code as the message's first word.
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(redis.exceptions, name)
    for name in (
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
    {"READONLY", "LOADING", "TRYAGAIN", "MASTERDOWN", "BUSY", "OOM", "CLUSTERDOWN", "NOREPLICAS", "MISCONF"}
)


def classify(exc: BaseException) -> Outcome:
    """Classify a failed write: transient trouble is retried, a configuration error drops the batch."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return Outcome.DROP
    if isinstance(exc, _TRANSIENT_ERRORS):
        return Outcome.RETRY
    if isinstance(exc, redis.exceptions.ResponseError):
        words = str(exc).split()
        return Outcome.RETRY if words and words[0].upper() in _TRANSIENT_CODES else Outcome.DROP
    # Connection failures, timeouts (an unknown outcome: the batch may have
    # been written) and anything unexpected are retried: dropping is final.
    return Outcome.RETRY
