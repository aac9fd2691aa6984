"""Ship Python log records to Redis from a background event loop, fast and without losing count."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._flush_all import flush_all
from ._handler import RedisHandler
from ._log_record import to_log_record
from ._loguru import LoguruSink
from ._reader import RedisLogConsumer
from ._shards import shard_keys
from ._structlog import StructlogProcessor

try:
    __version__ = version("redis-log-bridge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "LoguruSink",
    "RedisHandler",
    "RedisLogConsumer",
    "StructlogProcessor",
    "__version__",
    "flush_all",
    "shard_keys",
    "to_log_record",
]
