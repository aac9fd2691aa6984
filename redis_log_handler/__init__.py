"""Ship Python log records to Redis from a background event loop, fast and without losing count."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._reader.consumer import RedisLogConsumer
from ._schema.log_record import to_log_record
from ._shared.shards import shard_keys
from ._writer.flush_all import flush_all
from ._writer.handler import RedisHandler
from ._writer.loguru_sink import LoguruSink
from ._writer.structlog_processor import StructlogProcessor

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
