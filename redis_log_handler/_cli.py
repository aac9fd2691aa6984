"""The ``redis-log-handler`` command: argument parsing, dispatch to a subcommand, and one-line errors.

Conventions every subcommand follows: a bad argument prints one line
(``redis-log-handler <command>: error: ...``) and exits with status 2, as
argparse does; a server that cannot be reached, or that refuses the command,
prints one line naming the redacted URL and exits with status 1. No traceback
reaches the terminal for either.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import redis.exceptions

from ._command import CommandError, UsageError, positive_int, redis_url
from ._demo import DEMO_DESCRIPTION, MAX_THREADS, run_demo
from ._diagnostics import describe

__all__ = ["main"]

PROG = "redis-log-handler"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_demo(commands: argparse._SubParsersAction[_Parser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="log from several threads through stdlib logging, Loguru and structlog, and summarise the result",
        description=DEMO_DESCRIPTION,
    )
    demo.add_argument(
        "--url",
        type=redis_url,
        default=os.environ.get("REDIS_URL") or None,
        help="Redis URL (default: $REDIS_URL, else a throwaway server started for the demo and stopped after it)",
    )
    demo.add_argument(
        "--key",
        help="stream key to write to; it must not exist yet, or hold only an earlier demo's records (which are "
        "replaced). Default: a new key 'redis-log-handler:demo:<random>'. The stream expires an hour after the demo",
    )
    demo.add_argument(
        "--threads",
        type=positive_int(MAX_THREADS),
        default=8,
        help=f"threads logging at once, 1 to {MAX_THREADS:,} (default: %(default)s)",
    )
    demo.add_argument(
        "--records", type=positive_int(), default=100_000, help="records to log in all (default: %(default)s)"
    )
    demo.set_defaults(run=lambda args: run_demo(args.url, args.key, args.threads, args.records))


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Ship Python log records to Redis (redis-log-bridge). Run a command with --help for its options.",
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m redis_log_handler`` and the ``redis-log-handler`` script; returns the exit status."""
    arguments = _parser().parse_args(argv)
    name = f"{PROG} {arguments.command}"
    try:
        status: int = arguments.run(arguments)
    except UsageError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except redis.exceptions.RedisError as exc:
        # The server went away or refused a command after the first check; no URL is at hand here.
        print(f"{name}: Redis failed ({describe(exc)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head, say)
        # Python would report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status
