"""The ASGI servers stopped as operators stop them, counted from outside: every record logged is in Redis or named.

uvicorn (its command line, ``uvicorn.run``, ``--workers``), gunicorn's two uvicorn worker classes, hypercorn and
granian each run a small application and get SIGTERM in three situations:

- a request is in flight and logs a burst of records just before the worker ends (Redis up): every record is
  written, and the request is answered and every worker runs its lifespan shutdown wherever the server's own
  stop lets it;
- Redis is down for the last requests and comes back half a second after SIGTERM: every record is written;
- Redis stays down past ``close_timeout``: what was not written is named on stderr by the process that logged
  it, and nothing is silent.

The count from outside: the application notes in a file of its own, around each logging call, that the call
began and that it returned. A record whose call returned must be in Redis or named; a record in Redis or named
must have been logged (a call interrupted by the end of its process may go either way). docs/servers.md names
these tests.
"""

from __future__ import annotations

import collections
import http.client
import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import redis

from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import read_list, wait_until
from .servers import STOP_WITHIN, get, named, python_path, stop, tool, written_by_process

pytestmark = [pytest.mark.slow, pytest.mark.servers]

REQUESTS = 20
DOWN_TAIL = 5  # the last requests, answered while Redis is down
BURST = 5_000  # records the request in flight logs once SIGTERM has come
BACK_AFTER = 0.5  # seconds from SIGTERM to Redis started again
SHORT_CLOSE = 1.0  # close_timeout when Redis stays down past it

_APP = """
    import asyncio, logging, os
    from redis_log_handler import RedisHandler

    log = logging.getLogger("app")
    if not log.handlers:  # uvicorn.run's log_config may have given it one
        log.addHandler(
            RedisHandler(
                url=os.environ["LOG_URL"], key=os.environ["LOG_KEY"], mode="list",
                close_timeout=float(os.environ["CLOSE_TIMEOUT"]), spill_dir=os.environ.get("SPILL_DIR") or None,
            )
        )
        log.setLevel(logging.INFO)
    _calls = os.open(f"calls-{os.getpid()}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def logged(message, *args):
        os.write(_calls, b"s")  # the call began
        log.info(message, *args)
        os.write(_calls, b"r")  # the call returned

    logged("imported")

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await log.handlers[0].aflush(10)  # "imported" is in Redis, its reply read: none in flight
                    open(f"ready-{os.getpid()}", "w").close()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    open(f"shut-down-{os.getpid()}", "w").close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/flush":  # the test waits for it before killing Redis: no batch in flight then
            settled = await log.handlers[0].aflush(10)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(settled).encode()})
            return
        if scope["path"] == "/burst":
            open(f"in-flight-{os.getpid()}", "w").close()
            await asyncio.sleep(0.5)  # SIGTERM comes meanwhile
            for number in range(int(os.environ["BURST"])):
                logged("burst %d", number)
        logged("request %s", scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""

# docs/stdlib.md's recipe: uvicorn.run applies its log_config with dictConfig, so the handler goes into it.
_UVICORN_RUN = """
    import os, sys
    import uvicorn

    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "redis": {
                "class": "redis_log_handler.RedisHandler",
                "url": os.environ["LOG_URL"],
                "key": os.environ["LOG_KEY"],
                "mode": "list",
                "close_timeout": float(os.environ["CLOSE_TIMEOUT"]),
                "spill_dir": os.environ.get("SPILL_DIR") or None,
            }
        },
        "loggers": {"app": {"handlers": ["redis"], "level": "INFO", "propagate": False}},
    }

    if __name__ == "__main__":
        uvicorn.run("logapp:app", host="127.0.0.1", port=int(sys.argv[1]), log_config=LOGGING)
"""


@dataclass(frozen=True)
class Server:
    """An ASGI server as its users start it (``{port}`` filled in), and how many processes serve."""

    command: tuple[str, ...]
    workers: int
    answers_in_flight: bool = True  # whether its own stop lets a request in flight finish


SERVERS = {
    "uvicorn": Server(("uvicorn", "--port", "{port}", "logapp:app"), 1),
    "uvicorn.run": Server(("python", "serve.py", "{port}"), 1),
    "uvicorn-workers": Server(("uvicorn", "--workers", "2", "--port", "{port}", "logapp:app"), 2),
    "gunicorn-uvicorn": Server(
        ("gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", "127.0.0.1:{port}", "logapp:app"), 2
    ),
    "gunicorn-uvicorn-worker": Server(
        ("gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "-b", "127.0.0.1:{port}", "logapp:app"), 2
    ),
    # hypercorn's master terminates the other workers once one has exited: a request in flight there is cut.
    "hypercorn": Server(("hypercorn", "--workers", "2", "--bind", "127.0.0.1:{port}", "logapp:app"), 2, False),
    "granian": Server(("granian", "--interface", "asgi", "--workers", "2", "--port", "{port}", "logapp:app"), 2),
}


class Running:
    """One server started in a directory of its own, serving the application until :meth:`stop`."""

    started: ClassVar[list[Running]] = []  # for the fixture to kill what a failed test left running

    def __init__(
        self,
        directory: Path,
        server: Server,
        redis_server: EmbeddedRedis,
        key: str,
        close: float,
        spill_dir: Path | None = None,
    ) -> None:
        directory.mkdir(exist_ok=True)
        (directory / "logapp.py").write_text(textwrap.dedent(_APP))
        (directory / "serve.py").write_text(textwrap.dedent(_UVICORN_RUN))
        self.directory = directory
        self.port = _free_port()
        self._connection: http.client.HTTPConnection | None = None
        program, *arguments = (part.format(port=self.port) for part in server.command)
        env = {
            **os.environ,
            "LOG_URL": redis_server.url,
            "LOG_KEY": key,
            "CLOSE_TIMEOUT": str(close),
            "BURST": str(BURST),
            "SPILL_DIR": str(spill_dir or ""),
            "PYTHONPATH": python_path(directory),
        }
        self.env = env
        self.process = subprocess.Popen(
            [tool(program), *arguments],
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so that a hung server can be killed whole
        )
        Running.started.append(self)
        # A SIGTERM that comes while a worker is still starting is lost by some servers (granian's worker
        # before it set its signal handlers): every worker has run the application's lifespan startup first.
        wait_until(lambda: len(list(directory.glob("ready-*"))) == server.workers, timeout=60)
        wait_until(self._listening, timeout=30)  # uvicorn listens once the lifespan startup is over

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except OSError:
            return False
        return True

    def request(self, path: str) -> str:
        """GET *path* over one kept-alive connection (one worker answers them all), which must answer."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self._connection.request("GET", path)
        response = self._connection.getresponse()
        assert response.status == 200, f"{path} was answered {response.status}"
        return response.read().decode()

    def stop(self, then: Callable[[], None] = lambda: None) -> str:
        """SIGTERM, then *then*; the server's stderr once it has stopped, which it must do within STOP_WITHIN."""
        if self._connection is not None:
            self._connection.close()
        took, stderr = stop(self.process, then)
        assert took < STOP_WITHIN, f"still running {STOP_WITHIN} s after SIGTERM: {stderr[-3000:]}"
        return stderr

    def calls(self) -> dict[int, tuple[int, int]]:
        """For each process: how many logging calls began, and how many returned."""
        counts = {}
        for path in self.directory.glob("calls-*"):
            notes = path.read_bytes()
            counts[int(path.name.removeprefix("calls-"))] = (notes.count(b"s"), notes.count(b"r"))
        return counts


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Each ASGI server in turn; one a failed test left running is killed (its whole process group)."""
    yield SERVERS[request.param]
    for running in Running.started:
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.communicate()
    Running.started.clear()


@pytest.fixture
def own_client(own_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client of the test's own server (it reconnects after the server is started again)."""
    connection = redis.Redis.from_url(own_server.url)
    yield connection
    connection.close()


def account(running: Running, client: redis.Redis, key: str, stderr: str) -> tuple[int, int]:
    """Check the count from outside; returns how many records were written and how many named as not written.

    Every record whose logging call returned is in Redis or named, none twice, and none that was not logged;
    each process that named records named exactly those it logged and did not write.
    """
    documents = read_list(client, key)
    ids = [document["id"] for document in documents]
    assert len(set(ids)) == len(ids), "a record was written twice"
    calls = running.calls()
    lines = named(stderr, key)
    began = sum(count for count, _ in calls.values())
    returned = sum(count for _, count in calls.values())
    written, not_written = len(documents), sum(line.not_written for line in lines)
    assert returned <= written + not_written <= began, (
        f"{returned} calls returned and {began} began, {written} written and {not_written} named: {stderr[-3000:]}"
    )
    by_process = written_by_process(documents)
    for line in lines:
        began_there, returned_there = calls[line.pid]
        assert returned_there <= line.logged <= began_there, stderr[-3000:]
        assert line.written == by_process[line.pid], stderr[-3000:]
    return written, not_written


def requests_while_down(running: Running, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
    """REQUESTS requests, the last DOWN_TAIL of them answered while Redis is down.

    Redis is killed once the rest is in and the worker that answered (every request goes over one kept-alive
    connection) has read the replies of its writes: a batch whose reply a kill cuts off is sent again, and
    would be in Redis twice (at least once is the promise there, not exactly once as checked here)."""
    for number in range(REQUESTS - DOWN_TAIL):
        running.request(f"/{number}")
    assert running.request("/flush") == "True"
    assert client.llen(key) == len(running.calls()) + REQUESTS - DOWN_TAIL
    redis_server.kill()
    for number in range(REQUESTS - DOWN_TAIL, REQUESTS):
        running.request(f"/{number}")


class TestStops:
    def test_a_request_in_flight_at_sigterm_logs_a_burst_and_every_record_is_written(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str, server: Server
    ) -> None:
        """SIGTERM while a request is in flight that logs 5,000 records before it answers: with Redis up, every
        record logged is written, and the request is answered where the server's own stop lets it finish."""
        running = Running(tmp_path, server, own_server, key, close=5.0)
        for number in range(5):
            running.request(f"/{number}")
        answer: list[str | None] = []
        in_flight = threading.Thread(target=lambda: answer.append(get(f"http://127.0.0.1:{running.port}/burst", 30)))
        in_flight.start()
        try:
            wait_until(lambda: list(tmp_path.glob("in-flight-*")), timeout=30)
        finally:
            stderr = running.stop()
            in_flight.join()
        written, not_written = account(running, own_client, key, stderr)
        assert not_written == 0, stderr[-3000:]
        if server.answers_in_flight:  # the server's own stop ran whole: no logging call cut short, all in Redis
            calls = running.calls().values()
            assert written == sum(began for began, _ in calls) == sum(returned for _, returned in calls)
            assert len(list(tmp_path.glob("shut-down-*"))) == server.workers  # each ran its lifespan shutdown
            assert answer[0] is not None, f"the request in flight was not answered: {stderr[-3000:]}"
            assert collections.Counter(d["message"].split()[0] for d in read_list(own_client, key))["burst"] == BURST

    def test_redis_back_half_a_second_after_sigterm_every_record_is_written(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str, server: Server
    ) -> None:
        """Redis down for the last requests, started again half a second after SIGTERM (close_timeout 5 s):
        every record is written, none named."""
        running = Running(tmp_path, server, own_server, key, close=5.0)
        requests_while_down(running, own_server, own_client, key)

        def start_again() -> None:
            time.sleep(BACK_AFTER)  # the scenario: Redis comes back this long after the stop
            own_server.start()

        stderr = running.stop(then=start_again)
        written, not_written = account(running, own_client, key, stderr)
        assert not_written == 0, stderr[-3000:]
        assert written == len(running.calls()) + REQUESTS

    def test_redis_down_past_close_timeout_every_record_not_written_is_named(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str, server: Server
    ) -> None:
        """Redis down for the last requests and still down when close_timeout (1 s) runs out: the records
        logged meanwhile are named on stderr by the processes that logged them, none silent."""
        running = Running(tmp_path, server, own_server, key, close=SHORT_CLOSE)
        requests_while_down(running, own_server, own_client, key)
        stderr = running.stop()
        own_server.start()
        written, not_written = account(running, own_client, key, stderr)
        assert (written, not_written) == (len(running.calls()) + REQUESTS - DOWN_TAIL, DOWN_TAIL), stderr[-3000:]

    def test_with_a_spill_dir_what_the_stop_could_not_write_is_written_by_the_next_process(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str, server: Server
    ) -> None:
        """With spill_dir, Redis still down when close_timeout runs out: the records not written stay on disk
        (nothing is named as lost), and the next process that logs to the key with that directory writes them."""
        spill_dir = tmp_path / "spill"
        running = Running(tmp_path / "app", server, own_server, key, close=SHORT_CLOSE, spill_dir=spill_dir)
        requests_while_down(running, own_server, own_client, key)
        stderr = running.stop()
        own_server.start()
        assert named(stderr, key) == [], stderr[-3000:]
        assert "stay in" in stderr  # the close said where they are
        imports = len(running.calls()) + 1  # the next process imports the application too
        next_process = subprocess.run(
            [tool("python"), "-c", "import logapp"],
            cwd=running.directory,
            env=running.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert next_process.returncode == 0, next_process.stderr
        messages = collections.Counter(document["message"] for document in read_list(own_client, key))
        assert messages == collections.Counter(["imported"] * imports + [f"request /{n}" for n in range(REQUESTS)])
