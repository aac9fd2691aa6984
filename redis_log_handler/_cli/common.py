"""What every subcommand shares: its error types, argument types, and connecting with a one-line failure."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import redis
import redis.exceptions

from redis_log_handler._shared.address import redact_url, sync_client
from redis_log_handler._shared.checks import resolve_url
from redis_log_handler._shared.diagnostics import describe

__all__ = ["CommandError", "UsageError", "connect", "positive_int", "redis_url", "retain_argument"]

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
