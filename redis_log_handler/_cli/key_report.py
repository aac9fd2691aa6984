"""What ``status`` shows about the key itself: its length and memory, its oldest entry, and each group's progress.

Read-only, and each part is left out when the server refuses it (``MEMORY
USAGE`` and ``XINFO`` need their own ACL permissions): ``status`` never fails
for a missing permission of this part.

A group's ``trimmed_unread`` is what was removed from the head of the stream
before the group read it and has not been counted yet by a consumer of the
group (see ``retention``, whose rule this is); consumers count it in their
``stats()`` and set the group's counter past it.
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.exceptions

from redis_log_handler._reader.entries import as_text, id_order

from .tail_format import escape

__all__ = ["key_report", "report_lines"]


def _unread_removed(stream: dict[str, Any], group: dict[str, Any]) -> int | None:
    read = group.get("entries-read")
    added, length = stream.get("entries-added"), stream.get("length", 0)
    if read is None or added is None:
        return None
    first = stream.get("first-entry")
    delivered = str(as_text(group["last-delivered-id"]))
    if first and id_order(delivered) < id_order(first[0]):
        return max(0, int(added) - int(length) - int(read))
    if delivered == str(as_text(stream.get("last-generated-id"))):
        return max(0, int(added) - int(read))
    return 0


def key_report(client: redis.Redis, key: str, now: float | None = None) -> dict[str, Any] | None:
    """The key's type, length, memory and (streams) oldest entry's age and groups; None if it does not exist."""
    now = time.time() if now is None else now
    kind = as_text(client.type(key))
    if kind == "none":
        return None
    report: dict[str, Any] = {"key": key, "type": kind}
    try:
        report["memory"] = client.memory_usage(key, samples=0)
    except redis.exceptions.ResponseError:
        report["memory"] = None
    if kind == "list":
        report["length"] = client.llen(key)
        return report
    if kind != "stream":
        return report
    report["length"] = client.xlen(key)
    oldest = client.xrange(key, count=1)
    report["oldest_age"] = now - id_order(oldest[0][0])[0] / 1000 if oldest else None
    try:
        stream = {as_text(name): value for name, value in client.xinfo_stream(key).items()}
        groups = client.xinfo_groups(key)
    except redis.exceptions.ResponseError:
        return report
    report["groups"] = [
        {
            "name": as_text(group["name"]),
            "pending": group["pending"],
            "lag": group.get("lag"),
            "trimmed_unread": _unread_removed(stream, {as_text(k): v for k, v in group.items()}),
        }
        for group in groups
    ]
    return report


def report_lines(report: dict[str, Any] | None, key: str) -> list[str]:
    """*report* as lines for people."""
    if report is None:
        return [f"key {escape(key)}: does not exist"]
    if "error" in report:
        return [f"key {escape(key)}: cannot be read ({escape(report['error'])})"]
    memory = "-" if report.get("memory") is None else f"{report['memory']:,} bytes"
    line = f"key {escape(key)}: {report['type']}, {report.get('length', 0):,} entries, {memory}"
    if report.get("oldest_age") is not None:
        line += f", oldest {report['oldest_age']:.0f}s old"
    lines = [line]
    for group in report.get("groups", []):
        lag = "?" if group["lag"] is None else f"{group['lag']:,}"
        unread = "?" if group["trimmed_unread"] is None else f"{group['trimmed_unread']:,}"
        lines.append(
            f"  group {escape(group['name'])}: {group['pending']:,} pending, lag {lag}, trimmed unread {unread}"
        )
    return lines
