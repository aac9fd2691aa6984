"""Ship Python log records to Redis from a background event loop, fast and without losing count."""

from __future__ import annotations

from ._reader.consumer import RedisLogConsumer
from ._schema.log_record import to_log_record
from ._shared.shards import shard_keys
from ._shared.version import VERSION
from ._writer.flush_all import flush_all
from ._writer.handler import RedisHandler
from ._writer.loguru_sink import LoguruSink
from ._writer.structlog_processor import StructlogProcessor

__version__ = VERSION

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
