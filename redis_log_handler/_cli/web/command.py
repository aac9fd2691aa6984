"""``redis-log-handler web``: check the options, read the key's type, and serve the page until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from redis_log_handler._cli.common import CommandError, UsageError, connect, key_mode
from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.shards import shard_keys

from .guard import is_loopback

__all__ = ["TOKEN_VARIABLE", "run_web"]

TOKEN_VARIABLE = "REDIS_LOG_HANDLER_WEB_TOKEN"  # noqa: S105 - the name of a variable, not a secret
_MIN_TOKEN = 16


def _token(arguments: argparse.Namespace) -> str | None:
    token: str | None = arguments.token or os.environ.get(TOKEN_VARIABLE) or None
    if token is None and not is_loopback(arguments.host):
        raise UsageError(
            f"--host {arguments.host} serves the records beyond this machine: give a token (--token, or "
            f"${TOKEN_VARIABLE}) that the page asks for, or leave --host out to serve on 127.0.0.1"
        )
    if token is not None and len(token) < _MIN_TOKEN:
        raise UsageError(
            f"the token must be at least {_MIN_TOKEN} characters: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe())' makes one"
        )
    return token


def _stopped(_signum: int, _frame: object) -> None:
    """What uvicorn's second raise of SIGTERM or SIGINT reaches, once it has stopped serving."""


def run_web(arguments: argparse.Namespace) -> int:
    """Serve the page over ``arguments.key``; returns the exit status once stopped."""
    token = _token(arguments)
    try:
        import uvicorn  # noqa: PLC0415 - the web extra

        from .app import WebSettings, make_app  # noqa: PLC0415 - imports Starlette, the web extra
    except ImportError as exc:
        raise CommandError(
            f"needs the web extra ({exc.name} is not installed): pip install 'redis-log-bridge[web]'"
        ) from None
    keys = shard_keys(arguments.key, arguments.shards)
    client: Any = connect(arguments.url)
    try:
        mode = key_mode(client, keys, arguments.mode, arguments.url)
    except BaseException:
        client.close()
        raise
    settings = WebSettings(arguments.url, arguments.key, arguments.shards, mode, arguments.host, token)
    shown_host = f"[{arguments.host}]" if ":" in arguments.host else arguments.host
    print(
        f"redis-log-handler web: {arguments.key!r} ({mode}) at {redact_url(arguments.url)} on "
        f"http://{shown_host}:{arguments.port}/ (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    # uvicorn stops gracefully on SIGTERM and Ctrl-C, then raises the signal again for the handler that was
    # there before it: with Python's defaults, that kills the process (-15) or raises KeyboardInterrupt. The
    # stop is the normal end of this command: status 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    uvicorn.run(
        make_app(settings, client),
        host=arguments.host,
        port=arguments.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,  # a live read waits up to a second: a stop waits for no longer
    )
    return 0
