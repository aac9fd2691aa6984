"""The ``tail`` command: show the last records, and follow new ones, without changing anything in Redis.

A stream is read with ``XREVRANGE`` from the newest entry backwards, a chunk
at a time, until ``-n`` records passed the filters (so ``-n 100`` on a stream
of a million entries reads about 100 entries when nothing is filtered out),
then followed with ``XREAD`` (no consumer group: nothing is acknowledged). A
list is read with ``LRANGE`` from its tail backwards; nothing is popped. A
channel has no history: ``tail`` subscribes and shows what is published.
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import redis.exceptions

from redis_log_handler._reader.entries import Entry, Poison, parse_entry
from redis_log_handler._schema.document import iso_timestamp, normalize_level
from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.shards import shard_keys

from .common import UsageError, connect, key_mode, wrong_type
from .tail_format import RecordFilter, escape, json_line, text_lines

__all__ = ["count_argument", "level_argument", "print_last", "regex_argument", "run_tail", "since_argument"]

_CHUNK = 1000  # entries per read when walking back through a stream or list
_FOLLOW_BLOCK_MS = 1000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def count_argument(text: str) -> int:
    """An argparse type: a number of records, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


def level_argument(text: str) -> int:
    """An argparse type: a level name (``warning``, ``WARN``) or number, as a level number."""
    if text.isdigit():
        return int(text)
    name, number = normalize_level(text)
    if number == 0 and name != "NOTSET":
        raise argparse.ArgumentTypeError(f"must be a level name or number, got {text!r}")
    return number


def since_argument(text: str) -> float:
    """An argparse type: ``90s``, ``10m``, ``2h``, ``1d`` ago, or an ISO-8601 time; returns a POSIX time."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        return time.time() - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a duration like 10m, 2h, 1d or an ISO-8601 time, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time without a zone is local time, as the user reads it
    return moment.timestamp()


def regex_argument(text: str) -> re.Pattern[str]:
    """An argparse type: a regular expression."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"must be a regular expression ({exc}), got {text!r}") from None


class _Printer:
    """Prints records that pass the filter, as text lines or JSON, and counts them."""

    def __init__(self, record_filter: RecordFilter, as_json: bool, out: TextIO, *, colour: bool | None = None) -> None:
        self._filter = record_filter
        self._json = as_json
        self._out = out
        if colour is None:
            colour = not as_json and out.isatty() and not os.environ.get("NO_COLOR")
        self._colour = colour

    def lines(self, entry: Entry) -> list[str] | None:
        """The lines to print for *entry*, or None if it does not pass the filters."""
        document = parse_entry(entry)
        if isinstance(document, Poison):
            if self._filter.active or self._json:
                return None
            return [f"? {escape(entry[0] or '')} not a log record: {escape(document.reason)}"]
        if not self._filter(document):
            return None
        return [json_line(document)] if self._json else text_lines(document, colour=self._colour)

    def stamped(self, entry: Entry) -> tuple[str, list[str]] | None:
        """The record's ``@timestamp`` and its lines (to merge shards in time order), or None."""
        lines = self.lines(entry)
        if lines is None:
            return None
        document = parse_entry(entry)
        stamp = document.get("@timestamp") if isinstance(document, dict) else None
        return stamp if isinstance(stamp, str) else "", lines

    def show(self, lines: list[str], *, flush: bool = False) -> None:
        self._out.write("".join(f"{line}\n" for line in lines))
        if flush:
            self._out.flush()


_Lines = Callable[[Entry], Any]
"""Turns an entry into what is kept of it (its lines, say), or None if it does not pass."""


def _last_in_stream(client: Any, key: str, count: int, since_ms: int, lines_of: _Lines) -> tuple[list[Any], str]:
    """The lines of the last *count* entries that pass, oldest first, and the id to follow from."""
    found: list[Any] = []
    newest = "0-0"
    upper, lower = "+", f"{since_ms}-0" if since_ms else "-"
    while len(found) < count:
        chunk: Any = client.xrevrange(key, upper, lower, count=min(_CHUNK, max(100, count - len(found))))
        if not chunk:
            break
        if newest == "0-0":
            newest = chunk[0][0].decode()
        for entry_id, fields in chunk:
            lines = lines_of((entry_id.decode(), fields))
            if lines is not None:
                found.append(lines)
                if len(found) == count:
                    break
        upper = f"({chunk[-1][0].decode()}"  # exclusive: the next chunk starts below this one
    if newest == "0-0":  # -n 0, or nothing since --since: follow from the newest entry all the same
        last: Any = client.xrevrange(key, "+", "-", count=1)
        newest = last[0][0].decode() if last else "0-0"
    found.reverse()
    return found, newest


def _follow_streams(client: Any, positions: dict[str, str]) -> Iterator[Entry]:
    """New entries of every stream in *positions* (key -> the id to read after), each stream in turn.

    One stream at a time: the shards of a key live on different masters of a cluster.
    """
    block = max(10, _FOLLOW_BLOCK_MS // len(positions))
    while True:
        for key, after in positions.items():
            reply: Any = client.xread({key: after}, block=block, count=_CHUNK)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    positions[key] = entry_id.decode()
                    yield positions[key], fields


def _merged(per_shard: list[list[tuple[str, list[str]]]], count: int) -> list[list[str]]:
    """The last *count* records of several shards, merged by ``@timestamp`` (each shard keeps its own order)."""
    merged = list(heapq.merge(*per_shard, key=lambda stamped: stamped[0]))
    return [lines for _, lines in merged[len(merged) - count :]] if count else []


def _last_in_list(client: Any, key: str, count: int, lines_of: _Lines) -> list[Any]:
    """The lines of the last *count* elements that pass, oldest first (the handler pushes to the tail)."""
    found: list[Any] = []
    end = -1
    while len(found) < count:
        chunk: Any = client.lrange(key, end - _CHUNK + 1, end)
        if not chunk:
            break
        for element in reversed(chunk):
            lines = lines_of((None, element))
            if lines is not None:
                found.append(lines)
                if len(found) == count:
                    break
        end -= _CHUNK
    found.reverse()
    return found


def _channel(client: Any, key: str) -> Iterator[Entry]:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(key)
    while True:
        message = pubsub.get_message(timeout=_FOLLOW_BLOCK_MS / 1000)
        if message is not None:
            yield None, message["data"]


def _show_new(printer: _Printer, entries: Iterator[Entry], limit: int | None) -> None:
    shown = 0
    for entry in entries:
        if limit is not None and shown >= limit:
            return
        lines = printer.lines(entry)
        if lines is not None:
            printer.show(lines, flush=True)
            shown += 1


def print_last(client: Any, key: str, count: int, out: TextIO) -> None:
    """Print the last *count* records of the stream *key* as ``tail -n`` does, unfiltered and without colour."""
    printer = _Printer(RecordFilter(), as_json=False, out=out, colour=False)
    for lines in _last_in_stream(client, key, count, 0, printer.lines)[0]:
        printer.show(lines)


def _show_list(client: Any, keys: list[str], count: int, printer: _Printer, arguments: argparse.Namespace) -> None:
    lasts = [_last_in_list(client, key, count, printer.stamped) for key in keys]
    if not any(lasts) and not any(client.lrange(key, -1, -1) for key in keys):
        _say_empty(arguments, waiting=False)
    for lines in _merged(lasts, count):
        printer.show(lines)


def _show_stream(
    client: Any, keys: list[str], count: int, printer: _Printer, arguments: argparse.Namespace, out: TextIO
) -> None:
    since_ms = int(arguments.since * 1000) if arguments.since is not None else 0
    shards = [_last_in_stream(client, key, count, since_ms, printer.stamped) for key in keys]
    if all(newest == "0-0" for _, newest in shards):  # not one entry, filtered or not
        _say_empty(arguments, waiting=arguments.follow)
    for lines in _merged([last for last, _ in shards], count):
        printer.show(lines)
    if arguments.follow:
        out.flush()
        positions = {key: newest for key, (_, newest) in zip(keys, shards, strict=True)}
        _show_new(printer, _follow_streams(client, positions), None)


def _say_empty(arguments: argparse.Namespace, *, waiting: bool) -> None:
    """One line on stderr: the key holds nothing (or does not exist; telling them apart would take a command
    the least-privilege ACL of the docs does not grant)."""
    then = "; waiting for records" if waiting else ""
    where = f"{arguments.key!r} at {redact_url(arguments.url)}"
    print(f"redis-log-handler tail: no records in {where} (the key does not exist or is empty){then}", file=sys.stderr)


def run_tail(arguments: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the last records of ``arguments.key`` (and follow it with ``-f``); returns the exit status."""
    if out is None:
        out = sys.stdout
        if isinstance(out, io.TextIOWrapper):
            out.reconfigure(errors="backslashreplace")  # a terminal that cannot show a character gets an escape
    if arguments.shards > 1 and arguments.mode == "pubsub":
        raise UsageError("--shards applies to streams and lists: a channel is not sharded")
    since = arguments.since
    record_filter = RecordFilter(
        min_levelno=arguments.level,
        logger=arguments.logger,
        source=arguments.source,
        pattern=arguments.grep,
        since=iso_timestamp(since) if since is not None else None,
    )
    printer = _Printer(record_filter, arguments.json, out)
    count = 10 if arguments.lines is None else arguments.lines
    keys = shard_keys(arguments.key, arguments.shards)
    client = connect(arguments.url)
    mode = arguments.mode or "stream"
    try:
        mode = key_mode(client, keys, arguments.mode, arguments.url)
        if arguments.follow and mode == "list":
            raise UsageError(
                f"-f cannot follow the list {arguments.key!r} (consumers popping it move every index); leave -f "
                "out to show its last records, or write the records in stream mode"
            )
        if mode == "pubsub":  # no history: what is published from now on, up to -n records if given
            _show_new(printer, _channel(client, arguments.key), arguments.lines)
        elif mode == "list":
            _show_list(client, keys, count, printer, arguments)
        else:
            _show_stream(client, keys, count, printer, arguments, out)
    except redis.exceptions.ResponseError as exc:
        raise wrong_type(exc, arguments.key, mode, arguments.url) or exc from None
    finally:
        client.close()
    return 0
