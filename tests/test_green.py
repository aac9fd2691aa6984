"""Under gevent's and eventlet's monkey-patching: the runtime is a real thread, and waits yield to the hub.

Each case runs a script that patches first, as gunicorn's gevent worker and Celery's gevent and eventlet
pools do, then logs through a ``RedisHandler`` while another greenlet counts its turns. With the server
frozen (SIGSTOP), ``flush()``, ``overflow="block"`` and ``close()`` wait out their timeouts: the counting
greenlet must keep running meanwhile (a wait that blocked the OS thread would leave it at zero).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_list

pytestmark = pytest.mark.slow

_SCRIPT = """
    import sys
    library = sys.argv[3]
    if library == "gevent":
        from gevent import monkey
        monkey.patch_all()
        import gevent
        spawn, pause = gevent.spawn, gevent.sleep
    else:
        import eventlet
        eventlet.monkey_patch()
        spawn, pause = eventlet.spawn, eventlet.sleep

    import json, logging, time
    from redis_log_handler import RedisHandler
    from redis_log_handler._writer.runtime import get_runtime
    from redis_log_handler._shared.native import get_ident

    url, key = sys.argv[1:3]
    handler = RedisHandler(
        url=url, key=key, mode="list", buffer_size=200, overflow="block", block_timeout=0.5, close_timeout=0.5
    )
    log = logging.getLogger("green")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.info("healthy")
    report = {"healthy_flush": handler.flush(10)}
    report["runtime_on_its_own_thread"] = get_runtime().thread_id != get_ident()

    turns = [0]

    def count_turns():
        while True:
            turns[0] += 1
            pause(0.001)

    spawn(count_turns)
    pause(0.01)

    def turns_during(action):
        before, started = turns[0], time.monotonic()
        result = action()
        return result, turns[0] - before, time.monotonic() - started

    print("FREEZE", flush=True)
    sys.stdin.readline()  # the server is frozen now
    log.info("while frozen")
    report["flush"] = turns_during(lambda: handler.flush(0.5))

    def log_until_blocked():
        for number in range(2000):
            started = time.monotonic()
            before = turns[0]
            log.info("filling %d", number)
            if time.monotonic() - started >= 0.4:  # this call waited for room
                return number, turns[0] - before
        return None, 0

    (blocked_at, block_turns), _, _ = turns_during(log_until_blocked)
    report["block"] = [blocked_at, block_turns]
    report["close"] = turns_during(handler.close)
    print("REPORT " + json.dumps(report), flush=True)
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_waits_yield_to_the_hub_and_records_arrive(
    tmp_path: Path, own_server: EmbeddedRedis, key: str, library: str
) -> None:
    """flush, overflow="block" and close let other greenlets run while Redis is frozen; a healthy flush works."""
    pytest.importorskip(library)
    script = tmp_path / "green.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore", str(script), own_server.url, key, library],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "FREEZE"
        own_server.pause()
        process.stdin.write("\n")
        process.stdin.flush()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        own_server.resume()
        if process.poll() is None:
            process.kill()
            process.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, stderr[-3000:]
    report = json.loads(lines[0].removeprefix("REPORT "))
    assert report["healthy_flush"] is True
    assert report["runtime_on_its_own_thread"] is True
    flushed, flush_turns, _ = report["flush"]
    assert flushed is False  # the server is frozen: it waited out its timeout
    assert flush_turns >= 10, report
    blocked_at, block_turns = report["block"]
    assert blocked_at is not None, report  # a call did wait for room
    assert block_turns >= 10, report
    _, close_turns, _ = report["close"]
    assert close_turns >= 10, report
    client = redis.Redis.from_url(own_server.url)
    assert [document["message"] for document in read_list(client, key)][:1] == ["healthy"]
