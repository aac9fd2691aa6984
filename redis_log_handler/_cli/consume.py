"""The ``consume`` command: configure logging from a file, then re-emit every record into it until SIGTERM.

This is the "one process writes every service's logs to files" service:
producers log through ``RedisHandler``; this process reads the stream as one
consumer of a group and hands each record to its own logging configuration
(``FileHandler``, ``RotatingFileHandler``, ``SysLogHandler``, ...).
"""

from __future__ import annotations

import argparse
import json
import logging.config
import sys
from pathlib import Path
from typing import Any

from redis_log_handler._reader.consumer import RedisLogConsumer
from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.shards import shard_keys

from .common import UsageError, connect, key_mode

__all__ = ["configure_logging", "run_consume"]

_DICT_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
_FILE_CONFIG_SUFFIXES = (".ini", ".conf", ".cfg")


def _load_dict(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    try:
        import yaml  # noqa: PLC0415 - optional: only YAML configurations need it
    except ImportError:
        raise UsageError(f"reading {path.name} needs PyYAML: pip install 'redis-log-bridge[yaml]'") from None
    return yaml.safe_load(text)


# Without --config: every record to stdout, one line each, as the producer's own console would show it.
_STDOUT = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)-8s %(name)s: %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "line"}},
    "root": {"level": "DEBUG", "handlers": ["stdout"]},
}


def configure_logging(path: Path | None) -> None:
    """Configure logging from *path*: ``.json``/``.yaml`` through ``dictConfig``, ``.ini``/``.conf`` ``fileConfig``;
    without one, every record to stdout."""
    if path is None:
        logging.config.dictConfig(_STDOUT)
        return
    suffix = path.suffix.lower()
    if suffix not in _DICT_CONFIG_SUFFIXES + _FILE_CONFIG_SUFFIXES:
        known = ", ".join(_DICT_CONFIG_SUFFIXES + _FILE_CONFIG_SUFFIXES)
        raise UsageError(f"--config must name a {known} file, got {str(path)!r}")
    try:
        if suffix in _FILE_CONFIG_SUFFIXES:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        else:
            logging.config.dictConfig(_load_dict(path))
    except UsageError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        # dictConfig wraps most mistakes in ValueError; fileConfig lets KeyError and friends through.
        raise UsageError(f"cannot configure logging from {str(path)!r} ({type(exc).__name__}: {exc})") from None


def _keep_redis_py_to_stderr() -> None:
    """Send redis-py's own log records to stderr, not into the re-emitted records, unless the file configures them.

    The consumer's client logs through the ``redis`` loggers (at DEBUG on
    every connection, for one): with a root logger at DEBUG they would land
    among the producers' records in the files this command writes.
    """
    redis_logger = logging.getLogger("redis")
    if redis_logger.handlers or not redis_logger.propagate or redis_logger.level != logging.NOTSET:
        return
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("redis-log-handler consume: %(name)s: %(message)s"))
    redis_logger.addHandler(stderr)
    redis_logger.setLevel(logging.WARNING)
    redis_logger.propagate = False


def run_consume(arguments: argparse.Namespace) -> int:
    """Configure logging, check the server, and run a consumer until SIGTERM or SIGINT; returns the exit status."""
    configure_logging(arguments.config)
    _keep_redis_py_to_stderr()
    # A server that cannot be reached is one line and status 1, before anything runs; the key is read as what
    # it holds.
    client = connect(arguments.url)
    try:
        mode = key_mode(client, shard_keys(arguments.key, arguments.shards), arguments.mode, arguments.url)
    finally:
        client.close()
    try:
        consumer = RedisLogConsumer(
            url=arguments.url,
            key=arguments.key,
            mode=mode,
            group=arguments.group,
            name=arguments.name,
            shards=arguments.shards,
            retain=arguments.retain,
            retain_seconds=arguments.retain_seconds,
        )
    except ValueError as exc:  # a combination argparse cannot check (--shards with --mode pubsub, say)
        raise UsageError(str(exc)) from None
    settings = consumer.settings
    assert settings.url is not None
    where = f"group {settings.group!r} as {settings.name!r}" if settings.mode == "stream" else "no group"
    print(
        f"redis-log-handler consume: reading {settings.mode} {settings.key!r} at {redact_url(settings.url)} "
        f"({where}); stop with SIGTERM or Ctrl-C",
        file=sys.stderr,
        flush=True,
    )
    try:
        consumer.run()
    finally:
        consumer.close()
    counts = ", ".join(f"{name} {value}" for name, value in consumer.stats().items() if value)
    print(f"redis-log-handler consume: stopped ({counts or 'nothing read'})", file=sys.stderr, flush=True)
    return 0
