"""Handler settings: defaults and validation at configuration time."""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ._document import SCHEMA_FIELDS
from ._json import dumps, json_safe

__all__ = [
    "DEFAULT_URL",
    "MODES",
    "OVERFLOW_POLICIES",
    "ClientFactory",
    "Mode",
    "Overflow",
    "Settings",
    "redact_url",
    "resolve_url",
]

DEFAULT_URL = "redis://localhost:6379/0"
Mode = Literal["stream", "list", "pubsub"]
Overflow = Literal["drop_oldest", "drop_newest", "block"]
MODES: tuple[Mode, ...] = ("stream", "list", "pubsub")
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("drop_oldest", "drop_newest", "block")
_URL_SCHEMES = ("redis", "rediss", "unix")
_MIN_DOCUMENT_BYTES = 1024
ClientFactory = Callable[[], Any]
"""A zero-argument callable returning a ``redis.asyncio.Redis`` client (called on the runtime loop)."""


def resolve_url(url: str | None) -> str:
    """Return *url*, else ``$REDIS_URL``, else the default, after checking its form."""
    if url is None:
        url = os.environ.get("REDIS_URL") or DEFAULT_URL
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a non-empty string, got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(f"url is malformed ({exc}), got {redact_url(url)!r}") from None
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"url must start with redis://, rediss:// or unix://, got {redact_url(url)!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"url must have a socket path, got {redact_url(url)!r}")
    elif not parts.hostname:
        raise ValueError(f"url must have a host, got {redact_url(url)!r}")
    return url


def redact_url(url: str) -> str:
    """Hide a password in *url* so it never lands in an error message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated handler settings (see the configuration reference in docs/)."""

    url: str
    key: str
    mode: Mode
    maxlen: int | None
    ttl: int | None
    batch_size: int
    flush_interval: float
    buffer_size: int
    overflow: Overflow
    block_timeout: float
    close_timeout: float
    fields: Mapping[str, Any]
    max_document_bytes: int
    client: ClientFactory | None
    socket_timeout: float
    spill_dir: str | None
    spill_max_bytes: int
    spill_after: float

    @classmethod
    def build(
        cls,
        *,
        url: str | None,
        key: str,
        mode: str,
        maxlen: int | None,
        ttl: int | None,
        batch_size: int,
        flush_interval: float,
        buffer_size: int,
        overflow: str,
        block_timeout: float,
        close_timeout: float,
        fields: Mapping[str, Any] | None,
        max_document_bytes: int,
        client: ClientFactory | None,
        socket_timeout: float,
        spill_dir: str | os.PathLike[str] | None,
        spill_max_bytes: int,
        spill_after: float,
    ) -> Settings:
        """Check every parameter and raise ``ValueError`` naming the first bad one."""
        if client is not None and not callable(client):
            raise ValueError(f"client must be a callable returning a redis.asyncio client, got {client!r}")
        resolved_url = resolve_url(url) if client is None else (url or "<client factory>")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if maxlen is not None:
            maxlen = _positive_int("maxlen", maxlen)
            if mode == "pubsub":
                raise ValueError("maxlen applies to stream and list modes, not pubsub")
        if ttl is not None:
            ttl = _positive_int("ttl", ttl)
            if mode == "pubsub":
                raise ValueError("ttl applies to stream and list modes, not pubsub")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
        max_document_bytes = _positive_int("max_document_bytes", max_document_bytes)
        if max_document_bytes < _MIN_DOCUMENT_BYTES:
            raise ValueError(f"max_document_bytes must be at least {_MIN_DOCUMENT_BYTES}, got {max_document_bytes!r}")
        static_fields = _check_fields(fields, max_document_bytes)
        return cls(
            url=resolved_url,
            key=key,
            mode=mode,
            maxlen=maxlen,
            ttl=ttl,
            batch_size=_positive_int("batch_size", batch_size),
            flush_interval=_positive_seconds("flush_interval", flush_interval),
            buffer_size=_positive_int("buffer_size", buffer_size),
            overflow=overflow,
            block_timeout=_positive_seconds("block_timeout", block_timeout, allow_zero=True),
            close_timeout=_positive_seconds("close_timeout", close_timeout),
            fields=static_fields,
            max_document_bytes=max_document_bytes,
            client=client,
            socket_timeout=_positive_seconds("socket_timeout", socket_timeout),
            spill_dir=_check_spill_dir(spill_dir),
            spill_max_bytes=_positive_int("spill_max_bytes", spill_max_bytes),
            spill_after=_positive_seconds("spill_after", spill_after, allow_zero=True),
        )


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
