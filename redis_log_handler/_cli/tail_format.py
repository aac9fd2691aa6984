"""What ``tail`` prints: record filters, one escaped line per record, and colours by level.

A log message is data from anywhere (a user name, a request path), so every
field is escaped before it reaches the terminal: control characters (C0, DEL,
C1: escape sequences that clear the screen, move the cursor, set the window
title, ring the bell, or a ``\\r`` that overwrites the line), lone surrogates,
line and paragraph separators, and bidirectional overrides (text that reads
differently from what it is) are shown as ``\\xNN`` or ``\\uNNNN``, and a
newline inside a message as ``\\n``, so one record is always one line and no
record can fake another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordFilter", "as_filter_text", "escape", "json_line", "text_lines"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN = re.compile(r"[^\s\"'=]+")  # shown without quotes after key=
_COLOURS = {"DEBUG": "2", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(value: object) -> str:
    """*value* as text that is safe to print on a terminal, on one line."""
    return _UNSAFE.sub(_escaped, value if isinstance(value, str) else str(value))


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_line(document: Any) -> str:
    """*document* as one line of JSON, with every unsafe character written as a JSON ``\\u`` escape."""
    return _UNSAFE.sub(_json_escaped, json.dumps(document, ensure_ascii=False))


def _pairs(extra: object) -> str:
    """The record's extra fields as `` key=value`` pairs: a plain word as it is, anything else as JSON."""
    if not isinstance(extra, dict) or not extra:
        return ""
    shown = []
    for key, value in extra.items():
        plain = isinstance(value, str) and value and _PLAIN.fullmatch(value)
        shown.append(f"{escape(key)}={escape(value if plain else json.dumps(value, ensure_ascii=False, default=str))}")
    return "  " + " ".join(shown)


def text_lines(document: dict[str, Any], *, colour: bool) -> list[str]:
    """A record as ``time level source logger: message  key=value ...``, then its traceback and stack indented.

    Everything is escaped.
    """
    level = escape(document.get("level", "?"))
    shown_level = f"{level:<8}"
    if colour and level in _COLOURS:
        shown_level = f"\x1b[{_COLOURS[level]}m{shown_level}\x1b[0m"
    lines = [
        f"{escape(document.get('@timestamp', '?'))} {shown_level} {escape(document.get('source', '?')):<9} "
        f"{escape(document.get('logger', '?'))}: {escape(document.get('message', ''))}{_pairs(document.get('extra'))}"
    ]
    exception = document.get("exception")
    for block in (exception.get("traceback") if isinstance(exception, dict) else None, document.get("stack")):
        if isinstance(block, str) and block:
            lines.extend(f"    {escape(line)}" for line in block.split("\n"))
    return lines


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """The filters of ``tail``; a record is shown when it passes all of them."""

    min_levelno: int | None = None
    logger: str | None = None
    source: str | None = None
    pattern: re.Pattern[str] | None = None
    since: str | None = None  # an ISO-8601 UTC time in the documents' format: compared as text
    until: str | None = None  # as since: records logged before this time
    fields: tuple[tuple[str, str], ...] = ()  # (name, value): a top-level field, as text (see as_filter_text)
    extra: tuple[tuple[str, str], ...] = ()  # (name, value): an extra field, as text

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        limits = (self.min_levelno, self.logger, self.source, self.pattern, self.since, self.until)
        return any(value is not None for value in limits) or bool(self.fields or self.extra)

    def __call__(self, document: dict[str, Any]) -> bool:
        return all(test(self, document) for test in _TESTS)


def _level(f: RecordFilter, document: dict[str, Any]) -> bool:
    levelno = document.get("levelno")
    return f.min_levelno is None or (isinstance(levelno, int) and levelno >= f.min_levelno)


def _logger(f: RecordFilter, document: dict[str, Any]) -> bool:
    """A logger and its descendants: ``app`` matches ``app`` and ``app.db``, not ``application``."""
    name = document.get("logger")
    return f.logger is None or (isinstance(name, str) and (name == f.logger or name.startswith(f"{f.logger}.")))


def _source(f: RecordFilter, document: dict[str, Any]) -> bool:
    return f.source is None or document.get("source") == f.source


def _pattern(f: RecordFilter, document: dict[str, Any]) -> bool:
    """The pattern is searched in the message and in the traceback."""
    if f.pattern is None:
        return True
    exception = document.get("exception")
    traceback = exception.get("traceback") if isinstance(exception, dict) else None
    return any(isinstance(text, str) and f.pattern.search(text) for text in (document.get("message"), traceback))


def _since(f: RecordFilter, document: dict[str, Any]) -> bool:
    timestamp = document.get("@timestamp")
    return f.since is None or (isinstance(timestamp, str) and timestamp >= f.since)


def _until(f: RecordFilter, document: dict[str, Any]) -> bool:
    timestamp = document.get("@timestamp")
    return f.until is None or (isinstance(timestamp, str) and timestamp < f.until)


def as_filter_text(value: object) -> str:
    """How a field's value reads in a ``name=value`` filter: a string as it is, anything else as JSON
    (``process=4121``, ``ok=true``, ``user={"id": 1}`` with JSON's spacing)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _fields(f: RecordFilter, document: dict[str, Any]) -> bool:
    return all(name in document and as_filter_text(document[name]) == value for name, value in f.fields)


def _extra(f: RecordFilter, document: dict[str, Any]) -> bool:
    extra = document.get("extra")
    if not f.extra:
        return True
    return isinstance(extra, dict) and all(
        name in extra and as_filter_text(extra[name]) == value for name, value in f.extra
    )


_TESTS: tuple[Callable[[RecordFilter, dict[str, Any]], bool], ...] = (
    _level,
    _logger,
    _source,
    _since,
    _until,
    _fields,
    _extra,
    _pattern,
)
