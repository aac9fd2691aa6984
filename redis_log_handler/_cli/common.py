"""What every subcommand shares: its error types, argument types, and connecting with a one-line failure."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.exceptions

from redis_log_handler._shared.address import redact_url, sync_client
from redis_log_handler._shared.checks import resolve_url
from redis_log_handler._shared.diagnostics import describe

__all__ = [
    "CommandError",
    "UsageError",
    "command_to_paste",
    "connect",
    "key_mode",
    "positive_int",
    "redis_url",
    "retain_argument",
    "wrong_type",
]

_CONNECT_TIMEOUT = 2.0
_COMMAND_TIMEOUT = 10.0


class CommandError(Exception):
    """A failure the command reports in one line, exiting with status 1 (an unreachable server, say)."""


class UsageError(Exception):
    """An argument found bad only once the command runs (say, a key that already holds other data): status 2."""


def retain_argument(text: str) -> int | None:
    """An argparse type for ``--retain``: a whole number >= 0, or ``all`` (keep every entry: None)."""
    if text == "all":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 or 'all', got {text!r}")
    return int(text)


def positive_int(maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to *maximum*."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < 1 or (maximum is not None and value > maximum):
            limit = f"from 1 to {maximum:,}" if maximum is not None else "at least 1"
            raise argparse.ArgumentTypeError(f"must be {limit}, got {text!r}")
        return value

    return parse


def redis_url(text: str) -> str:
    """An argparse type: a Redis URL of a form the handler accepts."""
    try:
        return resolve_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("url ")) from None


def connect(url: str) -> Any:
    """A synchronous client that has answered PING; raises :class:`CommandError` if the server cannot be reached.

    A ``redis.Redis`` (for Sentinel, of the current master), or a ``redis.RedisCluster``.
    """
    client = None
    try:
        client = sync_client(url, socket_connect_timeout=_CONNECT_TIMEOUT, socket_timeout=_COMMAND_TIMEOUT)
        client.ping()
    # A cluster client connects in its constructor, and raises RedisClusterException if no node answers.
    except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
        if client is not None:
            client.close()
        raise CommandError(f"cannot reach Redis at {redact_url(url)} ({describe(exc)})") from None
    return client


_READABLE = ("stream", "list")  # what a key written by the handler holds (a channel is no key)


def key_mode(client: Any, keys: list[str], given: str | None, url: str) -> str:
    """How to read *keys*: as what they hold (``TYPE``), which must agree with *given* (``--mode``) if given.

    A channel (``pubsub``) is no key: *given* it is. A key that does not exist yet is read as *given*, else as
    a stream; so is any key when the user may not run ``TYPE`` (a read of the wrong type then fails, and
    :func:`wrong_type` says so in one line). Raises :class:`UsageError` naming the key, what it holds and the fix.
    """
    if given == "pubsub":
        return given
    try:
        held = {key: _text(client.type(key)) for key in keys}
    except redis.exceptions.NoPermissionError:
        return given or "stream"
    for key, kind in held.items():
        if kind not in (*_READABLE, "none"):
            raise UsageError(
                f"{key!r} at {redact_url(url)} holds a {kind}, not log records (a stream, or a list in list mode): "
                "check --key"
            )
    kinds = sorted(set(held.values()) - {"none"})
    if not kinds:
        return given or "stream"
    if len(kinds) > 1:
        raise UsageError(f"the shards of {keys[0]!r} at {redact_url(url)} hold both a stream and a list")
    kind = kinds[0]
    if given is not None and given != kind:
        raise UsageError(
            f"{keys[0]!r} at {redact_url(url)} holds a {kind}, not a {given}: give --mode {kind}, or leave --mode "
            "out to read a key as what it holds"
        )
    return kind


def wrong_type(exc: redis.exceptions.ResponseError, key: str, mode: str, url: str) -> UsageError | None:
    """The one line for a read of *key* as a *mode* that met another type (WRONGTYPE), or None for other errors."""
    if not str(exc).startswith("WRONGTYPE"):
        return None
    return UsageError(
        f"{key!r} at {redact_url(url)} holds something else than a {mode}: give --mode list (or stream), or check --key"
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_SCRIPT = "redis-log-handler"


def command_to_paste(*arguments: str) -> str:
    """The command line that runs ``redis-log-handler ARGUMENTS`` when pasted in the current directory's shell.

    The bare name where PATH finds this installation's script; else that script's path (relative when it is
    under the current directory: ``.venv/bin/redis-log-handler`` after the README's install, which does not
    activate the virtual environment); else this interpreter with ``-m redis_log_handler``.
    """
    script = Path(sys.executable).parent / _SCRIPT
    if script.exists():
        found = shutil.which(_SCRIPT)
        if found is not None and Path(found).resolve() == script.resolve():
            program = _SCRIPT
        else:
            relative = os.path.relpath(script)
            program = shlex.quote(relative if not relative.startswith("..") else str(script))
    else:
        program = f"{shlex.quote(sys.executable)} -m redis_log_handler"
    return " ".join([program, *(shlex.quote(argument) for argument in arguments)])
