"""The consumer's settings: defaults and validation at configuration time, as for the handler."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from typing import Any

from redis_log_handler._shared.checks import (
    MODES,
    Check,
    Mode,
    check_non_empty,
    check_one_of,
    check_positive_int,
    check_seconds,
    check_shards,
    checked,
    resolve_url,
)

__all__ = ["ReaderSettings"]

_STARTS = ("0", "$")


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    """``RedisLogConsumer``'s parameters with their defaults: the one list of them.

    Built with :meth:`build`, which validates every value: then ``url`` is
    always a string and ``name`` and ``dead_letter`` are filled in.
    """

    url: str | None = None
    key: str = "logs"
    mode: Mode = "stream"
    group: str = "redis-log-handler"
    name: str | None = None
    start: str = "0"
    batch_size: int = 500
    block: float = 1.0
    claim_idle: float = 60.0
    dedupe_window: int = 100_000
    dead_letter: str | None = None
    max_failures: int = 3
    shards: int = 1
    retain: int | None = 10_000
    retain_seconds: float = 0.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The parameter names, in order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def build(cls, **arguments: Any) -> ReaderSettings:
        """Check every parameter (defaults for those not given) and raise ``ValueError`` naming the first bad one."""
        return cls(**checked(cls, _CHECKS, arguments))


def _dedupe_window(name: str, value: object, _: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0 (0 turns de-duplication off), got {value!r}")
    return value


def _retain(name: str, value: object, _: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, or None to keep every entry, got {value!r}")
    return value


def _claim_idle(name: str, value: object, values: dict[str, Any]) -> float:
    idle: float = check_seconds(allow_zero=False)(name, value, values)
    if idle < values["block"]:
        raise ValueError(f"{name} must be at least block ({values['block']} s), got {value!r}")
    return idle


_CHECKS: dict[str, Check] = {
    "url": lambda _, value, __: resolve_url(value),
    "key": check_non_empty,
    "mode": check_one_of(MODES),
    "group": check_non_empty,
    "name": lambda name, value, _: (
        f"{socket.gethostname()}-{os.getpid()}" if value is None else check_non_empty(name, value, _)
    ),
    "start": check_one_of(_STARTS),
    "batch_size": check_positive_int,
    "block": check_seconds(allow_zero=False),
    "claim_idle": _claim_idle,
    "dedupe_window": _dedupe_window,
    "dead_letter": lambda name, value, values: (
        f"{values['key']}:dead" if value is None else check_non_empty(name, value, values)
    ),
    "max_failures": check_positive_int,
    "shards": check_shards,
    "retain": _retain,
    "retain_seconds": check_seconds(allow_zero=True),
}
