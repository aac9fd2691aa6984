"""The handler's settings (``WriterSettings``): defaults and validation at configuration time."""

from __future__ import annotations

import dataclasses
import os
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis_log_handler._schema.document import SCHEMA_FIELDS
from redis_log_handler._shared.checks import (
    MODES,
    Check,
    Mode,
    check_non_empty,
    check_one_of,
    check_positive_int,
    check_seconds,
    check_shards,
    checked,
    resolve_url,
)
from redis_log_handler._shared.json_codec import dumps, json_safe

from .transport.protocol import TransportFactory

__all__ = ["OVERFLOW_POLICIES", "ClientFactory", "Overflow", "WriterSettings"]

Overflow = Literal["drop_oldest", "drop_newest", "block"]
Schema = Literal["v1", "ecs"]
SCHEMAS: tuple[Schema, ...] = ("v1", "ecs")
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("drop_oldest", "drop_newest", "block")
_MIN_DOCUMENT_BYTES = 1024
ClientFactory = Callable[[], Any]
"""A zero-argument callable returning a ``redis.asyncio.Redis`` client (called on the runtime loop)."""


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """The handler's parameters with their defaults: the one list of them.

    ``RedisHandler.__init__`` spells the same parameters out for readers and
    type checkers; a test checks that its signature matches these fields.
    Built with :meth:`build`, which validates every value: then ``url`` is
    always a string, ``fields`` a dict and ``spill_dir`` an absolute path or None.
    """

    url: str | None = None
    key: str = "logs"
    mode: Mode = "stream"
    maxlen: int | None = None
    ttl: int | None = None
    batch_size: int = 1000
    flush_interval: float = 0.05
    buffer_size: int = 100_000
    overflow: Overflow = "drop_oldest"
    block_timeout: float = 1.0
    close_timeout: float = 5.0
    fields: Mapping[str, Any] | None = None
    max_document_bytes: int = 262_144
    client: ClientFactory | None = None
    socket_timeout: float = 5.0
    spill_dir: str | os.PathLike[str] | None = None
    spill_max_bytes: int = 1 << 30
    spill_after: float = 5.0
    heartbeat: float | None = None
    schema: Schema = "v1"
    shards: int = 1
    wait_replicas: int = 0
    transport: TransportFactory | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The parameter names, in order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def build(cls, **arguments: Any) -> WriterSettings:
        """Check every parameter (defaults for those not given) and raise ``ValueError`` naming the first bad one."""
        return cls(**checked(cls, _CHECKS, arguments))


def _optional_positive_int(name: str, value: object, values: dict[str, Any]) -> int | None:
    if value is None:
        return None
    if values["mode"] == "pubsub":
        raise ValueError(f"{name} applies to stream and list modes, not pubsub, got {value!r}")
    return check_positive_int(name, value)


def _client(name: str, value: object, _: object) -> object:
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be a callable returning a redis.asyncio client, got {value!r}")
    return value


def _transport(name: str, value: object, values: dict[str, Any]) -> object:
    if value is None:
        return None
    if not callable(value):
        raise ValueError(f"{name} must be a callable taking a key and returning a transport, got {value!r}")
    if values["client"] is not None:
        raise ValueError(f"{name} replaces the client: give one of client and {name}, got both")
    return value


def _url(_: str, value: str | None, values: dict[str, Any]) -> str:
    if values["transport"] is not None:
        return value or "<transport>"
    return resolve_url(value) if values["client"] is None else (value or "<client factory>")


def _wait_replicas(name: str, value: object, values: dict[str, Any]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    if value and values["mode"] == "pubsub":
        raise ValueError(f"{name} applies to stream and list modes, not pubsub, got {value!r}")
    return value


def _document_bytes(name: str, value: object, _: object) -> int:
    value = check_positive_int(name, value)
    if value < _MIN_DOCUMENT_BYTES:
        raise ValueError(f"{name} must be at least {_MIN_DOCUMENT_BYTES}, got {value!r}")
    return value


# Every parameter's check, in the order they run (a check may read the values checked before it).
_CHECKS: dict[str, Check] = {
    "client": _client,
    "transport": _transport,
    "url": _url,
    "key": check_non_empty,
    "mode": check_one_of(MODES),
    "maxlen": _optional_positive_int,
    "ttl": _optional_positive_int,
    "overflow": check_one_of(OVERFLOW_POLICIES),
    "max_document_bytes": _document_bytes,
    "fields": lambda _, value, values: _check_fields(value, values["max_document_bytes"]),
    "batch_size": check_positive_int,
    "flush_interval": check_seconds(allow_zero=False),
    "buffer_size": check_positive_int,
    "block_timeout": check_seconds(allow_zero=True),
    "close_timeout": check_seconds(allow_zero=False),
    "socket_timeout": check_seconds(allow_zero=False),
    "spill_dir": lambda _, value, __: _check_spill_dir(value),
    "spill_max_bytes": check_positive_int,
    "spill_after": check_seconds(allow_zero=True),
    "schema": check_one_of(SCHEMAS),
    "heartbeat": lambda name, value, values: (
        None if value is None else check_seconds(allow_zero=False)(name, value, values)
    ),
    "shards": check_shards,
    "wait_replicas": _wait_replicas,
}


def _check_spill_dir(spill_dir: str | os.PathLike[str] | None) -> str | None:
    """Return the spill directory as an absolute path, created if missing; it must be writable."""
    if spill_dir is None:
        return None
    if not isinstance(spill_dir, str | os.PathLike) or not os.fspath(spill_dir):
        raise ValueError(f"spill_dir must be a directory path, got {spill_dir!r}")
    path = os.path.abspath(os.fspath(spill_dir))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"spill_dir cannot be created ({exc.strerror}), got {path!r}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"spill_dir must be writable, got {path!r}")
    return path


def _check_fields(fields: Mapping[str, Any] | None, max_document_bytes: int) -> dict[str, Any]:
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise ValueError(f"fields must be a mapping of static fields, got {reprlib.repr(fields)}")
    for name in fields:
        if not isinstance(name, str) or not name:
            raise ValueError(f"fields keys must be non-empty strings, got {name!r}")
        if name in SCHEMA_FIELDS:
            raise ValueError(f"fields may not replace the schema field {name!r}")
    safe = json_safe(dict(fields))
    if len(dumps(safe)) > max_document_bytes // 4:
        raise ValueError(f"fields must encode to at most a quarter of max_document_bytes, got {reprlib.repr(fields)}")
    return safe  # type: ignore[no-any-return]
