"""The ``status`` command: the key (see ``key_report``) and every producer's last heartbeat, as text or JSON.

Read-only (``HGETALL <key>:producers``, then the key's own figures). A
producer whose last beat is older than three of its intervals is shown as
stale: it died without closing, or cannot reach Redis.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import redis.exceptions

from redis_log_handler._shared.diagnostics import describe
from redis_log_handler._shared.shards import shard_keys
from redis_log_handler._writer.heartbeat import STALE_AFTER, producers_key

from .common import connect
from .key_report import key_report, report_lines
from .tail_format import escape

__all__ = ["producers", "run_status"]

_REASONS = ("overflow", "closed", "error", "internal")
_COLUMNS = ("producer", "host", "pid", "mode", "state", "age", "rate/s", "written", "dropped", "buffered", "spill")


def producers(raw: dict[bytes, bytes], now: float) -> list[dict[str, Any]]:
    """The beats in *raw*, each with ``age`` and ``state`` added, healthy first then by host and pid."""
    beats = []
    for field, value in raw.items():
        try:
            beat = json.loads(value)
            age = now - float(beat["seen_at"])
            stale = age > STALE_AFTER * float(beat["interval"])
        except (ValueError, KeyError, TypeError):
            continue  # not a heartbeat this library wrote
        beat.update(field=field.decode(errors="replace"), age=age, state="stale" if stale else "ok")
        beats.append(beat)
    beats.sort(key=lambda beat: (beat["state"] != "ok", str(beat.get("host")), str(beat.get("pid"))))
    return beats


def _row(beat: dict[str, Any]) -> list[str]:
    rate = beat.get("rate")
    dropped = f"{beat.get('dropped', 0):,}"
    if beat.get("dropped"):
        reasons = ("overflow", "closed", "error", "internal")
        dropped += (
            " (" + ", ".join(f"{r} {beat.get(f'dropped_{r}', 0):,}" for r in reasons if beat.get(f"dropped_{r}")) + ")"
        )
    return [
        escape(beat["field"]),
        escape(beat.get("host", "?")),
        escape(beat.get("pid", "?")),
        escape(beat.get("mode", "?")),
        beat["state"] if beat.get("connected", True) or beat["state"] == "stale" else "disconnected",
        f"{beat['age']:.0f}s",
        "-" if rate is None else f"{rate:,.0f}",
        f"{beat.get('written', 0):,}",
        dropped,
        f"{beat.get('buffered', 0):,}",
        f"{beat.get('spill_bytes', 0):,}",
    ]


def run_status(arguments: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the producers of ``arguments.key``; returns the exit status (0, even when there are none)."""
    out = out or sys.stdout
    client = connect(arguments.url)
    try:
        raw: Any = client.hgetall(producers_key(arguments.key))
        keys = {key: _key(client, key) for key in shard_keys(arguments.key, arguments.shards)}
    finally:
        client.close()
    beats = producers(raw, time.time())
    key_lines = [line + "\n" for key, report in keys.items() for line in report_lines(report, key)]
    if arguments.json:
        for beat in beats:
            out.write(json.dumps(beat, default=str) + "\n")
        for key, report in keys.items():
            out.write(json.dumps({"key": key, "report": report}, default=str) + "\n")
        return 0
    if not beats:
        out.write(f"no heartbeats for {escape(arguments.key)!s} (handlers beat only with heartbeat=<seconds>)\n")
        out.writelines(key_lines)
        return 0
    rows = [list(_COLUMNS), *(_row(beat) for beat in beats)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
    for beat in beats:
        if beat.get("last_error"):
            out.write(f"{escape(beat['field'])}: last error: {escape(beat['last_error'])}\n")
    out.writelines(key_lines)
    return 0


def _key(client: Any, key: str) -> dict[str, Any] | None:
    try:
        return key_report(client, key)
    except redis.exceptions.ResponseError as exc:  # an ACL without the commands that read the key
        return {"key": key, "error": describe(exc)}
