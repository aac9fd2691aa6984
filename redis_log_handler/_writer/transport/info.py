"""What the writer reads from ``INFO`` replies: the server's version (for idempotent writes) and replication ids.

One parser of the ``field:value`` lines for both.
"""

from __future__ import annotations

from .protocol import ReplicationHistory

__all__ = ["info_fields", "replication_history", "supports_idempotent_xadd"]

# Idempotent XADD (IDMP) first shipped in Redis 8.6; Valkey reports a
# redis_version for compatibility but does not have it.
_IDMP_SINCE = (8, 6)


def info_fields(info: bytes | str) -> dict[str, str]:
    """The ``field:value`` lines of an ``INFO`` reply, values stripped (section headers and blank lines skipped)."""
    text = info.decode() if isinstance(info, bytes) else info
    return {name: value.strip() for name, _, value in (line.partition(":") for line in text.splitlines()) if _}


def supports_idempotent_xadd(info: bytes | str) -> bool:
    """Whether an ``INFO server`` reply comes from a server with idempotent XADD (Redis 8.6+)."""
    fields = info_fields(info)
    if "valkey_version" in fields or fields.get("server_name", "redis") != "redis":
        return False
    try:
        version = tuple(int(part) for part in fields["redis_version"].split(".")[:2])
    except (KeyError, ValueError):
        return False
    return version >= _IDMP_SINCE


def replication_history(info: bytes | str) -> ReplicationHistory:
    """The replication ids in an ``INFO replication`` reply."""
    fields = info_fields(info)
    return fields.get("master_replid", ""), fields.get("master_replid2", "")
