"""Heartbeats and the status command: the fleet's counters in one hash, stale producers shown and cleaned up."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler._cli.main import main
from redis_log_handler._schema.document import producer_id
from redis_log_handler.testing import EmbeddedRedis

from .helpers import wait_until

BEAT = 0.2


def beats(client: redis.Redis, key: str) -> dict[str, dict[str, object]]:
    """The heartbeat hash of *key*, decoded."""
    return {field.decode(): json.loads(value) for field, value in client.hgetall(f"{key}:producers").items()}


def test_a_handler_beats_and_leaves(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: Callable[..., RedisHandler],
    logger: logging.Logger,
) -> None:
    """The field carries the counters, the rate since the last beat and who beats; close removes it."""
    handler = make_handler(url=redis_server.url, key=key, heartbeat=BEAT, fields={"service": "api"})
    logger.addHandler(handler)
    for number in range(300):
        logger.info("%d", number)
    assert handler.flush(10)
    wait_until(lambda: any(beat["written"] == 300 and beat["rate"] is not None for beat in beats(client, key).values()))
    ((field, beat),) = beats(client, key).items()
    assert field.startswith(f"{producer_id()}.")
    assert (beat["key"], beat["mode"], beat["pid"], beat["interval"]) == (key, "stream", handler._shipper.pid, BEAT)
    assert beat["fields"] == {"service": "api"}
    assert beat["dropped"] == 0
    assert beat["connected"] is True
    assert abs(time.time() - float(beat["seen_at"])) < 5  # type: ignore[arg-type]
    handler.close()
    assert beats(client, key) == {}


def test_status_shows_live_and_stale_producers_and_beats_clean_up(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: Callable[..., RedisHandler],
    logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A producer silent for 3 intervals shows as stale; one silent for 10 is removed by the next beat."""
    now = time.time()
    for field, age in (("dead-stale.1", 5), ("dead-gone.1", 50)):
        fake = {"seen_at": now - age, "interval": 1.0, "host": "old\x1b[2Jhost", "pid": 7, "mode": "stream"}
        client.hset(f"{key}:producers", field, json.dumps({**fake, "written": 5, "dropped": 0}))
    handler = make_handler(url=redis_server.url, key=key, heartbeat=BEAT)
    logger.addHandler(handler)
    logger.warning("hello")
    assert handler.flush(10)
    wait_until(lambda: "dead-gone.1" not in beats(client, key) and len(beats(client, key)) == 2)
    wait_until(lambda: all(beat.get("connected", True) for beat in beats(client, key).values()))
    assert main(["status", "--url", redis_server.url, "--key", key]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["producer", "host", "pid", "mode", "state"]
    assert lines[1].split()[4] == "ok"
    assert "old\\x1b[2Jhost" in lines[2]
    assert lines[2].split()[4] == "stale"
    assert main(["status", "--url", redis_server.url, "--key", key, "--json"]) == 0
    *producers, last = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    states = {producer["field"]: producer["state"] for producer in producers}
    assert states.pop("dead-stale.1") == "stale"
    assert list(states.values()) == ["ok"]
    assert last["key"] == key
    assert last["report"]["type"] == "stream"
    assert last["report"]["length"] == 1


def test_no_heartbeats(redis_server: EmbeddedRedis, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Without heartbeats, status says how to turn them on."""
    assert main(["status", "--url", redis_server.url, "--key", key]) == 0
    assert "heartbeat=<seconds>" in capsys.readouterr().out


@pytest.mark.parametrize("value", [0, -1, float("inf"), "10"])
def test_bad_heartbeat(value: object) -> None:
    """heartbeat must be None or a positive number of seconds."""
    with pytest.raises(ValueError, match=r"^heartbeat "):
        RedisHandler(heartbeat=value)  # type: ignore[arg-type]
