"""The page's address as filters: the query string of ``/`` and of ``/api/*`` names them the same way.

``level=warning&logger=app.db&source=stdlib&grep=timeout&since=10m&until=2026-12-07T10:00&field=host=web-1
&extra=user=alice``: ``level``, ``since`` and ``grep`` read as ``tail``'s options do, ``field`` and ``extra``
may repeat (every one must match). A bad value is a ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from redis_log_handler._cli.tail import level_argument, regex_argument, since_argument
from redis_log_handler._cli.tail_format import RecordFilter
from redis_log_handler._schema.document import iso_timestamp
from redis_log_handler._schema.sources import SOURCES

__all__ = ["record_filter"]

T = TypeVar("T")


def _pairs(parameter: str, values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        name, equals, wanted = value.partition("=")
        if not equals or not name:
            raise ValueError(f"{parameter} must be name=value, got {value!r}")
        pairs.append((name, wanted))
    return tuple(pairs)


def _source(text: str) -> str:
    if text not in SOURCES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(SOURCES)}, got {text!r}")
    return text


def _parsed(query: Mapping[str, Sequence[str]], name: str, parse: Callable[[str], T]) -> T | None:
    """The last non-empty value of *name* through *parse* (an argparse type of ``tail``), or None."""
    values = [value for value in query.get(name, ()) if value]
    if not values:
        return None
    try:
        return parse(values[-1])
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{name} {exc}") from None


def record_filter(query: Mapping[str, Sequence[str]]) -> RecordFilter:
    """The filters in *query* (each parameter's values, as ``parse_qs`` gives them); empty values are ignored."""
    since = _parsed(query, "since", since_argument)
    until = _parsed(query, "until", since_argument)
    return RecordFilter(
        min_levelno=_parsed(query, "level", level_argument),
        logger=_parsed(query, "logger", str),
        source=_parsed(query, "source", _source),
        pattern=_parsed(query, "grep", regex_argument),
        since=iso_timestamp(since) if since is not None else None,
        until=iso_timestamp(until) if until is not None else None,
        fields=_pairs("field", [value for value in query.get("field", ()) if value]),
        extra=_pairs("extra", [value for value in query.get("extra", ()) if value]),
    )
