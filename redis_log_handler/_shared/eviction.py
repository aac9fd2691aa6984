"""Whether the server may evict a log key whole: ``maxmemory-policy``, read once at connect, said once on stderr.

Under an ``allkeys-*`` policy Redis frees memory by removing whole keys, the
log key included, with every record in it unread and nothing counted. Under
``volatile-*`` policies only keys with a time to live are candidates, which a
handler's ``ttl`` makes the log key. Reading the policy needs ``CONFIG GET``;
a user without it (the least-privilege users of docs/production.md) is not
warned, and nothing else changes.
"""

from __future__ import annotations

from .diagnostics import report

__all__ = ["evicting_policy", "warn_if_evicting"]

_warned: set[tuple[str, str]] = set()  # (who, key) already warned about; no lock: a race only repeats the line


def evicting_policy(reply: object) -> str | None:
    """The policy in a ``CONFIG GET maxmemory-policy`` reply (a flat list or a dict), or None if unreadable."""
    if isinstance(reply, dict):
        values = list(reply.values())
    elif isinstance(reply, list | tuple) and len(reply) == 2:
        values = [reply[1]]
    else:
        return None
    if not values:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def warn_if_evicting(policy: str | None, key: str, who: str, *, ttl: bool = False) -> None:
    """Say once per process for *who* and *key* that *policy* can evict the key whole (*ttl*: the key has one)."""
    if policy is None or not (policy.startswith("allkeys-") or (ttl and policy.startswith("volatile-"))):
        return
    if (who, key) in _warned:
        return
    _warned.add((who, key))
    report(
        f"{who}-eviction",
        f"Redis evicts keys under maxmemory-policy {policy}: when its memory is full it can remove the log key "
        f"{key!r} whole, unread and uncounted (seen by the {who}); set maxmemory-policy noeviction on that "
        "server, and the handler retries, spills and counts instead (docs: Retention and memory)",
        force=True,
    )
