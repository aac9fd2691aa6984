"""The parameter checks both sides' settings share: one error style, a ``ValueError`` naming the parameter.

Each side's settings are a frozen dataclass (the one list of its parameters)
and a table of checks, one per field, run in order by :func:`checked`: a check
may read the values checked before it (``shards`` reads ``mode`` and ``key``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .address import parse_address

__all__ = [
    "DEFAULT_URL",
    "MODES",
    "Check",
    "Mode",
    "check_non_empty",
    "check_one_of",
    "check_positive_int",
    "check_seconds",
    "check_shards",
    "checked",
    "resolve_url",
]

DEFAULT_URL = "redis://localhost:6379/0"
Mode = Literal["stream", "list", "pubsub"]
MODES: tuple[Mode, ...] = ("stream", "list", "pubsub")


def resolve_url(url: str | None) -> str:
    """Return *url*, else ``$REDIS_URL``, else the default, after checking its form (see ``_shared.address``)."""
    if url is None:
        url = os.environ.get("REDIS_URL") or DEFAULT_URL
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a non-empty string, got {url!r}")
    parse_address(url)
    return url


Check = Callable[[str, Any, dict[str, Any]], Any]
"""Validates one parameter: (name, value, every value so far) -> the value to keep, or ValueError."""


def checked(settings: type, checks: Mapping[str, Check], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the dataclass *settings*' fields: *arguments*, else the defaults, each through its check."""
    fields = dataclasses.fields(settings)
    unknown = arguments.keys() - {field.name for field in fields}
    if unknown:
        raise TypeError(f"unexpected parameters: {', '.join(sorted(unknown))}")
    values = {field.name: arguments.get(field.name, field.default) for field in fields}
    for name, check in checks.items():
        values[name] = check(name, values[name], values)
    return values


def check_positive_int(name: str, value: object, _: object = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_seconds(*, allow_zero: bool) -> Check:
    def check(name: str, value: object, _: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, got {value!r}")
        return float(value)

    return check


def check_one_of(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: object, _: object) -> object:
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def check_shards(name: str, value: object, values: dict[str, Any]) -> int:
    value = check_positive_int(name, value)
    if value > 1 and values["mode"] == "pubsub":
        raise ValueError(f"{name} applies to stream and list modes, not pubsub, got {value!r}")
    if value > 1 and "{" in values["key"]:
        raise ValueError(f"{name} > 1 needs a key without a hash tag ('{{'), got key {values['key']!r}")
    return value


def check_non_empty(name: str, value: object, _: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value
