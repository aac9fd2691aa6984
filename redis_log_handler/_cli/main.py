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
from pathlib import Path
from typing import NoReturn

import redis.exceptions

from redis_log_handler import __version__
from redis_log_handler._reader.settings import ReaderSettings
from redis_log_handler._schema.sources import SOURCES
from redis_log_handler._shared.checks import DEFAULT_URL, MODES
from redis_log_handler._shared.diagnostics import describe
from redis_log_handler._writer.settings import WriterSettings

from .common import CommandError, UsageError, positive_int, redis_url, retain_argument
from .consume import run_consume
from .demo import DEMO_DESCRIPTION, MAX_THREADS, run_demo
from .status import run_status
from .tail import count_argument, level_argument, regex_argument, run_tail, since_argument

__all__ = ["main"]

PROG = "redis-log-handler"
# The defaults the options share with RedisLogConsumer and RedisHandler: read from their one list of parameters.
_READER = ReaderSettings()
_WRITER = WriterSettings()


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
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the throwaway server (and the demo's records) until Ctrl-C, to look around with tail",
    )
    demo.set_defaults(run=lambda args: run_demo(args.url, args.key, args.threads, args.records, keep=args.keep))


def _add_url(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--url",
        type=redis_url,
        default=os.environ.get("REDIS_URL") or DEFAULT_URL,  # a string default goes through type= too
        help=f"Redis URL (default: $REDIS_URL, else {DEFAULT_URL})",
    )


def _add_source(command: argparse.ArgumentParser) -> None:
    """The options naming what to read: --url, --key, --mode."""
    _add_url(command)
    command.add_argument(
        "--key", default=_READER.key, help="the stream, list or channel to read (default: %(default)s)"
    )
    command.add_argument(
        "--mode",
        choices=MODES,
        help="how the records were written (default: what the key holds, a stream or a list; a stream if the key "
        "does not exist yet; a channel is read only with --mode pubsub)",
    )
    command.add_argument(
        "--shards",
        type=positive_int(1024),
        default=_READER.shards,
        help="the key's shards, as the handlers' shards= (default: %(default)s); all are read",
    )


def _add_tail(commands: argparse._SubParsersAction[_Parser]) -> None:
    tail = commands.add_parser(
        "tail",
        help="show the last records (and follow new ones with -f); changes nothing in Redis",
        description="Show the last records that pass the filters, oldest first, one line each (tracebacks "
        "indented), and follow new ones with -f. Read-only: nothing is acknowledged, popped or removed. Every "
        "control character in a record is shown escaped. A channel (--mode pubsub) has no history: tail shows "
        "what is published from now on, up to -n records if -n is given.",
    )
    _add_source(tail)
    tail.add_argument("-n", "--lines", type=count_argument, help="records to show (default: 10)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep showing new records until Ctrl-C (streams)")
    tail.add_argument("--level", type=level_argument, help="minimum level, a name (warning) or a number (30)")
    tail.add_argument("--logger", help="only this logger and its children (app matches app and app.db)")
    tail.add_argument("--source", choices=SOURCES, help="only records from this source")
    tail.add_argument("--grep", type=regex_argument, help="only records whose message or traceback match REGEX")
    tail.add_argument(
        "--since", type=since_argument, help="only records logged since: 90s, 10m, 2h, 1d, or an ISO time"
    )
    tail.add_argument("--json", action="store_true", help="print each record as one line of JSON")
    tail.set_defaults(run=run_tail)


def _add_consume(commands: argparse._SubParsersAction[_Parser]) -> None:
    consume = commands.add_parser(
        "consume",
        help="re-emit every record into a local logging configuration (files, syslog, ...) until SIGTERM",
        description="Configure logging from FILE (.json or .yaml through dictConfig, .ini or .conf through "
        "fileConfig; without --config, every record goes to stdout), then hand every record read from Redis to "
        "logging.getLogger(record's logger).handle(). "
        "In stream mode the consumers of one group share the work, and an entry is acknowledged only after the "
        f"local handlers returned; entries a dead consumer left pending are claimed after {_READER.claim_idle:g} s. "
        "Stops on SIGTERM or Ctrl-C after the batch in hand, with status 0.",
    )
    consume.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="logging configuration file (default: every record to stdout, one line each)",
    )
    _add_source(consume)
    consume.add_argument("--group", default=_READER.group, help="consumer group (default: %(default)s)")
    consume.add_argument("--name", help="this consumer's name in the group (default: <host>-<pid>)")
    consume.add_argument(
        "--retain",
        type=retain_argument,
        default=_READER.retain,
        metavar="N|all",
        help="stream mode: remove the entries every group of the key has acknowledged, keeping the newest N for "
        "tail; 'all' keeps every entry (default: %(default)s)",
    )
    consume.add_argument(
        "--retain-seconds",
        type=float,
        default=_READER.retain_seconds,
        metavar="S",
        help="stream mode: also keep the entries younger than S seconds (default: %(default)s)",
    )
    consume.set_defaults(run=run_consume)


def _add_status(commands: argparse._SubParsersAction[_Parser]) -> None:
    status = commands.add_parser(
        "status",
        help="show every producer's last heartbeat for a key (handlers with heartbeat=<seconds>)",
        description="Show the handlers writing to a key, from their heartbeats (RedisHandler(heartbeat=10), say): "
        "rate, written, dropped by reason, buffered, spill bytes, last error, and how long ago each beat. A "
        "producer silent for three of its intervals shows as stale. Read-only.",
    )
    _add_url(status)
    status.add_argument("--key", default=_WRITER.key, help="the key the handlers write to (default: %(default)s)")
    status.add_argument(
        "--shards",
        type=positive_int(1024),
        default=_WRITER.shards,
        help="the key's shards, as the handlers' shards= (default: %(default)s); each is shown",
    )
    status.add_argument("--json", action="store_true", help="print each producer, then each key, as a JSON line")
    status.set_defaults(run=run_status)


def _add_web(commands: argparse._SubParsersAction[_Parser]) -> None:
    web = commands.add_parser(
        "web",
        help="serve a page over a key: live records, filters, history, a chart by level, the producers (extra web)",
        description="Serve one page over the records of a key: new records as they arrive, the filters of tail "
        "(kept in the page's address), older records as you scroll up, each record in full, a chart of records "
        "by level, and what status shows. Read-only. Binds to 127.0.0.1; any other --host needs a token. Needs "
        "pip install 'redis-log-bridge[web]'. Stops on SIGTERM or Ctrl-C.",
    )
    _add_source(web)
    web.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s)")
    web.add_argument("--port", type=positive_int(65535), default=8765, help="port to serve on (default: %(default)s)")
    web.add_argument(
        "--token",
        help="a secret the page asks for before it shows anything (default: $REDIS_LOG_HANDLER_WEB_TOKEN); "
        "needed for a --host other than loopback",
    )
    web.set_defaults(run=_run_web)


def _run_web(arguments: argparse.Namespace) -> int:
    from .web.command import run_web  # noqa: PLC0415 - the page's modules are loaded only to serve it

    return run_web(arguments)


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Ship Python log records to Redis (redis-log-bridge). Run a command with --help for its options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_tail(commands)
    _add_consume(commands)
    _add_status(commands)
    _add_web(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m redis_log_handler`` and the ``redis-log-handler`` script; returns the exit status."""
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):  # the bare command: what it can do, not one line
        parser.print_help(sys.stderr)
        return 2
    arguments = parser.parse_args(argv)
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
