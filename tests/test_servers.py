"""The servers and workers users deploy on, started for real: every request, task or job answered, every record
delivered exactly once, and the server stopped within 15 s of SIGTERM.

Each case runs a small application that logs once when it is imported and once per request, task or job through
one ``RedisHandler`` (list mode, so the order and count are easy to read back), and no process names a record
it could not write. docs/servers.md names the test of each server and worker model; the ASGI servers' stops are
in ``test_server_stops.py``.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import wait_until
from .servers import (
    GUNICORN_READY_HOOKS,
    STOP_WITHIN,
    accepting,
    get,
    messages_once,
    named,
    named_not_written,
    python_path,
    stop,
    tool,
)

pytestmark = [pytest.mark.slow, pytest.mark.servers]

REQUESTS = 20
DOWN_TAIL = 5  # the last requests, answered while Redis is down: their records can only arrive at the stop

_WSGI_APP = """
    import logging, os
    from redis_log_handler import RedisHandler

    log = logging.getLogger("app")
    close_timeout = float(os.environ.get("CLOSE_TIMEOUT", "5"))
    log.addHandler(RedisHandler(os.environ["LOG_URL"], os.environ["LOG_KEY"], "list", close_timeout=close_timeout))
    log.setLevel(logging.INFO)
    log.info("imported")
    log.handlers[0].flush(5)  # in Redis, its reply read (uWSGI's master, which runs no thread, returns at once)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/flush":  # the test asks each worker before it kills Redis: none in flight
            return [f"{log.handlers[0].flush(10)} {os.getpid()}".encode()]
        log.info("request %s", environ["PATH_INFO"])
        return [str(os.getpid()).encode()]
"""


def serve_and_request(
    tmp_path: Path,
    server: EmbeddedRedis,
    key: str,
    app_source: str,
    command: list[str],
    ready: Callable[[], bool] | None = None,
    *,
    imported: int,
    outage: str = "back",
) -> tuple[set[int], str]:
    """Start *command* in *tmp_path* (with ``{port}`` filled in), answer REQUESTS requests, stop it with SIGTERM.

    Before the last DOWN_TAIL requests, and again before the stop, *ready* (if given) is waited for: every
    worker has started (a worker retired by ``--max-requests`` has been respawned). gunicorn and uWSGI lose a
    SIGTERM that comes while a worker is still booting or importing the app, or while uWSGI's master waits
    to respawn one (with or without this library), and the server then waits out its own timeout. Before the
    last DOWN_TAIL requests every record so far (the *imported* ones and a request's each) is waited for too:
    none is in flight. Then, by *outage*:

    - ``"back"``: *server* is killed for the last requests and started again right after SIGTERM: their
      records are still buffered when the server is told to stop, so the test fails if the stop loses them
      (the writer may get them in during a worker's graceful shutdown, or its exit writes them), and their
      answers show that the application never waits on Redis;
    - ``"past-close"``: the same, but *server* is started again only once the server has stopped, and the
      application's ``close_timeout`` is 1 s: those records must be named on stderr;
    - ``"none"``: Redis stays up.

    (A frozen server would not do: what a writer sent before it froze is read once it thaws. A batch in
    flight at the kill would be sent again: at least once, not the exactly once checked.)

    Returns the worker pids that answered and the server's stderr; fails if a request went unanswered or the
    server took more than STOP_WITHIN seconds to stop.
    """
    (tmp_path / "logapp.py").write_text(textwrap.dedent(app_source))
    port = _free_port()
    process = subprocess.Popen(
        [part.format(port=port) for part in command],
        cwd=tmp_path,
        env={
            **os.environ,
            "LOG_URL": server.url,
            "LOG_KEY": key,
            "CLOSE_TIMEOUT": "1" if outage == "past-close" else "5",
            "PYTHONPATH": python_path(tmp_path),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so that a hung server can be killed whole
    )
    reader = redis.Redis.from_url(server.url)
    workers = set()
    in_redis: list[int] = []  # what the last wait for the records so far saw
    failure: AssertionError | None = None
    try:
        for number in range(REQUESTS):
            if number == REQUESTS - DOWN_TAIL:
                if ready is not None:
                    wait_until(ready, timeout=30)
                wait_until(
                    lambda settled=imported + number: in_redis.append(reader.llen(key)) or in_redis[-1] == settled,
                    timeout=30,
                )
                if outage != "none":
                    settle(port, workers)
                    server.kill()
            body = wait_until(lambda number=number: get(f"http://127.0.0.1:{port}/{number}"), timeout=30)
            workers.add(int(body))
        if ready is not None:  # a worker respawned after its last request is up again: no SIGTERM lost to it
            wait_until(ready, timeout=30)
    except AssertionError as exc:  # said with what Redis held and what the server said, once it has stopped
        failure = exc
    finally:
        took, stderr = stop(process, then=server.start if outage == "back" else lambda: None)
        reader.close()
        if outage == "past-close":
            server.start()
    if failure is not None:
        raise AssertionError(
            f"{failure}: {len(workers)} workers answered; records in Redis at the last look {in_redis[-1:]}, "
            f"expected {imported + REQUESTS - DOWN_TAIL}; the server's stderr: {stderr[-3000:]}"
        ) from failure
    assert took < STOP_WITHIN, f"still running {STOP_WITHIN} s after SIGTERM: {stderr[-3000:]}"
    return workers, stderr


def settle(port: int, workers: set[int]) -> None:
    """Wait until each of *workers* has read the replies of its writes (a batch whose reply a kill of Redis cuts
    off is sent again, and would be in Redis twice: at least once is the promise there, not the exactly once
    checked here). Each asks ``/flush`` of whichever worker answers, until every one has said True."""
    settled: set[int] = set()

    def ask() -> bool:
        answer = get(f"http://127.0.0.1:{port}/flush")
        if answer is not None and answer.startswith("True "):
            settled.add(int(answer.split()[1]))
        return workers <= settled

    wait_until(ask, timeout=30)


@pytest.fixture
def own_client(own_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client of the test's own server (it reconnects after the server is started again)."""
    connection = redis.Redis.from_url(own_server.url)
    yield connection
    connection.close()


def down_tail_requests() -> collections.Counter[str]:
    """The messages of the requests answered while Redis was down."""
    return collections.Counter(f"request /{number}" for number in range(REQUESTS - DOWN_TAIL, REQUESTS))


def expected_requests(imported: int) -> collections.Counter[str]:
    """The messages of a run: *imported* imports of the application, and every request once."""
    return collections.Counter(["imported"] * imported + [f"request /{number}" for number in range(REQUESTS)])


GUNICORN_CASES = [
    pytest.param(worker_class, preload, id=f"{worker_class}{'-preload' if preload else ''}")
    for worker_class in ("sync", "gthread", "gevent")
    for preload in (False, True)
]


class TestGunicorn:
    @pytest.mark.parametrize(("worker_class", "preload"), GUNICORN_CASES)
    def test_every_request_answered_and_logged_once(
        self,
        tmp_path: Path,
        own_server: EmbeddedRedis,
        own_client: redis.Redis,
        key: str,
        worker_class: str,
        preload: bool,
    ) -> None:
        """gunicorn sync, gthread and gevent, with and without --preload: no hang, every record once."""
        (tmp_path / "hooks.py").write_text(textwrap.dedent(GUNICORN_READY_HOOKS))
        command = [tool("gunicorn"), "-c", "hooks.py", "-k", worker_class, "-w", "2", "-b", "127.0.0.1:{port}"]
        command += ["--preload", "logapp:app"] if preload else ["logapp:app"]
        workers, stderr = serve_and_request(
            tmp_path,
            own_server,
            key,
            _WSGI_APP,
            command,
            ready=lambda: len(list(tmp_path.glob("ready-*"))) >= 2,
            imported=1 if preload else 2,
        )
        assert workers
        assert messages_once(own_client, key) == expected_requests(1 if preload else 2), stderr[-3000:]
        assert named(stderr, key) == []
        assert "Traceback" not in stderr

    def test_the_documented_example_runs(self, tmp_path: Path, own_server: EmbeddedRedis) -> None:
        """docs/servers.md's gunicorn example as written (its Redis and port replaced by the test's): a request
        is answered, and the tail command shown beside it shows its record."""
        app, (serve, show) = documented_gunicorn_example()
        (tmp_path / "app.py").write_text(app.replace("redis://localhost:6379/0", own_server.url))
        port = _free_port()
        environment = {**os.environ, "REDIS_URL": own_server.url, "PYTHONPATH": python_path(tmp_path)}
        bin_directory = str(Path(sys.executable).parent)
        environment["PATH"] = os.pathsep.join([bin_directory, environment.get("PATH", "")])  # the venv, activated
        server = subprocess.Popen(
            shlex.split(serve.replace("127.0.0.1:8000", f"127.0.0.1:{port}")),
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert wait_until(lambda: get(f"http://127.0.0.1:{port}/hello"), timeout=30) == "ok\n"
            wait_until(lambda: redis.Redis.from_url(own_server.url).xlen("app:logs") == 1, timeout=30)
            shown = subprocess.run(
                shlex.split(show),
                cwd=tmp_path,
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            took, stderr = stop(server, then=lambda: None)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.rstrip().endswith(" stdlib    app: request /hello"), shown.stdout
        assert took < STOP_WITHIN, stderr[-3000:]

    @pytest.mark.parametrize("worker_class", ["sync", "gthread", "gevent"])
    def test_records_redis_never_got_are_named_at_the_stop(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str, worker_class: str
    ) -> None:
        """Redis down for the last requests and still down when close_timeout (1 s) runs out at SIGTERM: every
        record is in Redis or named by the worker that logged it."""
        (tmp_path / "hooks.py").write_text(textwrap.dedent(GUNICORN_READY_HOOKS))
        command = [tool("gunicorn"), "-c", "hooks.py", "-k", worker_class, "-w", "2", "-b", "127.0.0.1:{port}"]
        _, stderr = serve_and_request(
            tmp_path,
            own_server,
            key,
            _WSGI_APP,
            [*command, "logapp:app"],
            ready=lambda: len(list(tmp_path.glob("ready-*"))) >= 2,
            imported=2,
            outage="past-close",
        )
        assert messages_once(own_client, key) == expected_requests(2) - down_tail_requests(), stderr[-3000:]
        assert named_not_written(stderr, key, own_client) == DOWN_TAIL, stderr[-3000:]


_DOCS = Path(__file__).resolve().parent.parent / "docs" / "servers.md"


def documented_gunicorn_example() -> tuple[str, list[str]]:
    """docs/servers.md's gunicorn example: the application file, and the commands to run after it."""
    section = _DOCS.read_text().split("## gunicorn\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(python|sh)\n(.*?)```", section, re.DOTALL)
    (app,) = [text for language, text in blocks if language == "python"]
    commands = [text for language, text in blocks if language == "sh"][1]
    return app, [line.split("#", 1)[0].strip() for line in commands.splitlines()]


UWSGI_CASES = [
    pytest.param([], 1, id="default"),
    pytest.param(["--enable-threads"], 1, id="enable-threads"),
    pytest.param(["--lazy-apps"], 2, id="lazy-apps"),
    pytest.param(["--py-call-uwsgi-fork-hooks"], 1, id="fork-hooks"),
    pytest.param(["--enable-threads", "--py-call-uwsgi-fork-hooks"], 1, id="threads-and-fork-hooks"),
    pytest.param(["--processes", "3", "--max-requests", "3", "--min-worker-lifetime", "0"], 1, id="respawning-workers"),
]
_UWSGI_GRACEFUL_STOP = ["--hook-master-start", "unix_signal:15 gracefully_kill_them_all"]
_UWSGI_BRUTAL_STOP = "uWSGI stops a worker that is busy with a request"


def uwsgi_command(options: list[str]) -> list[str]:
    """uWSGI preforking, 2 workers unless *options* say more; each worker touches ``ready-<its pid>`` as it accepts."""
    command = [tool("uwsgi"), "--master", "--processes", "2", "--http-socket", "127.0.0.1:{port}"]
    command += ["--wsgi-file", "logapp.py", "--callable", "app", "--hook-accepting", "exec:touch ready-$PPID"]
    return command + options


class TestUWSGI:
    @pytest.mark.parametrize(("options", "imported"), UWSGI_CASES)
    def test_every_request_answered_and_logged_once(
        self,
        tmp_path: Path,
        own_server: EmbeddedRedis,
        own_client: redis.Redis,
        key: str,
        options: list[str],
        imported: int,
    ) -> None:
        """uWSGI preforking (the master imports the app, forks from C): no hang, every record once, at a stop too.

        SIGTERM comes right after the last answers, given while Redis was down, with the graceful stop
        docs/servers.md prescribes: each worker finishes its request and runs Python's exit hooks, which write
        those records. Without ``--lazy-apps`` the app is imported once, in
        the master; with ``--max-requests`` workers are respawned from the master several times during the run.
        """
        workers, stderr = serve_and_request(
            tmp_path,
            own_server,
            key,
            _WSGI_APP,
            uwsgi_command([*_UWSGI_GRACEFUL_STOP, *options]),
            ready=accepting(tmp_path, 3 if "3" in options else 2),
            imported=imported,
            # a worker retiring while Redis is down would rightly drop its records after close_timeout
            outage="none" if "--max-requests" in options else "back",
        )
        assert workers
        assert messages_once(own_client, key) == expected_requests(imported), stderr[-3000:]
        assert named(stderr, key) == []
        assert "Traceback" not in stderr
        assert stderr.count("uWSGI's master forks its workers") <= 1
        assert _UWSGI_BRUTAL_STOP not in stderr

    def test_brutal_stop_is_named_once(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str
    ) -> None:
        """``--die-on-term`` alone: the server still stops within 15 s, and stderr says once that a worker busy
        with a request at that stop loses what it had not written, with the setting that fixes it.

        uWSGI skips Python's exit hooks in such a worker, so only the records that were in before the last
        requests must be there (Redis stays up here); none twice.
        """
        workers, stderr = serve_and_request(
            tmp_path,
            own_server,
            key,
            _WSGI_APP,
            uwsgi_command(["--die-on-term"]),
            ready=lambda: len(list(tmp_path.glob("ready-*"))) >= 2,
            imported=1,
            outage="none",
        )
        assert workers
        logged = messages_once(own_client, key)
        assert logged & expected_requests(1) == logged, stderr[-3000:]  # nothing unexpected, nothing twice
        tail = {f"request /{number}" for number in range(REQUESTS - DOWN_TAIL, REQUESTS)}
        assert set(expected_requests(1) - logged) <= tail  # a busy worker's last records may be lost
        assert stderr.count(_UWSGI_BRUTAL_STOP) == 1, stderr[-3000:]
        assert 'unix_signal:15 gracefully_kill_them_all"' in stderr

    def test_records_redis_never_got_are_named_at_the_graceful_stop(
        self, tmp_path: Path, own_server: EmbeddedRedis, own_client: redis.Redis, key: str
    ) -> None:
        """With the graceful stop, Redis down for the last requests and still down when close_timeout (1 s) runs
        out: every record is in Redis or named by the worker that logged it."""
        _, stderr = serve_and_request(
            tmp_path,
            own_server,
            key,
            _WSGI_APP,
            uwsgi_command(_UWSGI_GRACEFUL_STOP),
            ready=lambda: len(list(tmp_path.glob("ready-*"))) >= 2,
            imported=1,
            outage="past-close",
        )
        assert messages_once(own_client, key) == expected_requests(1) - down_tail_requests(), stderr[-3000:]
        assert named_not_written(stderr, key, own_client, per_process=False) == DOWN_TAIL, stderr[-3000:]


_CELERY_APP = """
    import logging, os
    from celery import Celery
    from celery.signals import setup_logging
    from redis_log_handler import RedisHandler

    app = Celery("tasks", broker=os.environ["BROKER_URL"], backend=os.environ["BROKER_URL"])
    app.conf.worker_hijack_root_logger = False
    log = logging.getLogger("app")
    if not log.handlers:
        close_timeout = float(os.environ["CLOSE_TIMEOUT"])
        log.addHandler(RedisHandler(os.environ["LOG_URL"], os.environ["LOG_KEY"], "list", close_timeout=close_timeout))
        log.setLevel(logging.INFO)

    @setup_logging.connect
    def keep_our_logging(**kwargs):
        pass

    @app.task
    def work(number):
        log.info("task %d", number)
        if number % 5 == 4:
            raise ValueError(f"task {number} fails")
        return number
"""


def run_celery(
    tmp_path: Path, broker_server: EmbeddedRedis, log_url: str, key: str, pool: str, tasks: int, close_timeout: float
) -> tuple[subprocess.CompletedProcess[str], str]:
    """A Celery worker with *pool* (2 at once, children retired every 4 tasks) runs *tasks* tasks, every fifth
    raising, sent by another process; then SIGTERM. Returns the sender's result and the worker's stderr; fails if
    the worker took more than STOP_WITHIN seconds to stop."""
    (tmp_path / "logtasks.py").write_text(textwrap.dedent(_CELERY_APP))
    broker = broker_server.url[: -len("/0")] + "/15"
    env = {**os.environ, "LOG_URL": log_url, "LOG_KEY": key, "BROKER_URL": broker, "TASKS": str(tasks)}
    env["CLOSE_TIMEOUT"] = str(close_timeout)
    env["PYTHONPATH"] = python_path(tmp_path)
    command = [tool("celery"), "-A", "logtasks", "worker", "-P", pool, "-c", "2", "--without-gossip"]
    command += ["--without-mingle", "--without-heartbeat", "--max-tasks-per-child", "4", "-l", "WARNING"]
    worker = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        sender = subprocess.run(
            [sys.executable, "-c", _SEND_TASKS],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            _, stderr_bytes = worker.communicate(timeout=STOP_WITHIN + 10)
            took = time.monotonic() - started
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            _, stderr_bytes = worker.communicate()
            took = float("inf")
    stderr = stderr_bytes.decode(errors="replace")
    assert sender.returncode == 0, sender.stderr + stderr[-3000:]
    assert took < STOP_WITHIN, stderr[-3000:]
    return sender, stderr


class TestCelery:
    @pytest.mark.parametrize("pool", ["prefork", "gevent", "threads", "solo"])
    def test_every_task_logged_once(
        self, tmp_path: Path, redis_server: EmbeddedRedis, client: redis.Redis, key: str, pool: str
    ) -> None:
        """Celery's pools: 25 tasks (every fifth raising) give 25 records, and the worker stops on SIGTERM.

        Prefork children end with ``os._exit`` after ``--max-tasks-per-child``: here every 4 tasks.
        """
        sender, stderr = run_celery(tmp_path, redis_server, redis_server.url, key, pool, 25, close_timeout=5)
        assert sender.stdout.split() == ["20", "5"]
        assert messages_once(client, key) == collections.Counter(f"task {n}" for n in range(25)), stderr[-3000:]
        assert named(stderr, key) == []

    def test_prefork_children_name_what_redis_never_got(
        self, tmp_path: Path, redis_server: EmbeddedRedis, own_server: EmbeddedRedis, key: str
    ) -> None:
        """The logs' Redis down throughout (close_timeout 1 s): the prefork children, retired after 4 tasks or
        stopped at SIGTERM, end with os._exit, and each names the records it logged: 10 in all."""
        own_server.kill()
        sender, stderr = run_celery(tmp_path, redis_server, own_server.url, key, "prefork", 10, close_timeout=1)
        assert sender.stdout.split() == ["8", "2"]
        lines = named(stderr, key)
        assert sum(line.not_written for line in lines) == 10, stderr[-3000:]
        assert all(line.written == 0 for line in lines)


_SEND_TASKS = """
import logtasks, os
results = [logtasks.work.delay(number) for number in range(int(os.environ["TASKS"]))]
succeeded = failed = 0
for result in results:
    try:
        result.get(timeout=60)
        succeeded += 1
    except ValueError:
        failed += 1
print(succeeded, failed)
"""

_RQ_JOBS = """
    import logging, os
    from redis_log_handler import RedisHandler

    log = logging.getLogger("jobs")
    if not log.handlers:
        close_timeout = float(os.environ["CLOSE_TIMEOUT"])
        log.addHandler(RedisHandler(os.environ["LOG_URL"], os.environ["LOG_KEY"], "list", close_timeout=close_timeout))
        log.setLevel(logging.INFO)

    def work(number):
        log.info("job %d", number)
        if number % 5 == 4:
            raise ValueError(f"job {number} fails")
        return number
"""

_ENQUEUE = """
import os, redis, rq, logjobs
queue = rq.Queue("jobs", connection=redis.Redis.from_url(os.environ["BROKER_URL"]))
for number in range(int(os.environ["JOBS"])):
    queue.enqueue(logjobs.work, number)
"""


def run_rq(
    tmp_path: Path, broker_server: EmbeddedRedis, log_url: str, key: str, jobs: int, close_timeout: float
) -> str:
    """``rq worker --burst`` with the integration's worker class runs *jobs* jobs, every fifth raising; its stderr."""
    (tmp_path / "logjobs.py").write_text(textwrap.dedent(_RQ_JOBS))
    broker = broker_server.url[: -len("/0")] + "/14"
    env = {**os.environ, "LOG_URL": log_url, "LOG_KEY": key, "BROKER_URL": broker, "JOBS": str(jobs)}
    env["CLOSE_TIMEOUT"] = str(close_timeout)
    env["PYTHONPATH"] = python_path(tmp_path)
    redis.Redis.from_url(broker).delete("rq:queue:jobs")
    subprocess.run([sys.executable, "-c", _ENQUEUE], cwd=tmp_path, env=env, check=True, timeout=60)
    worker_class = "redis_log_handler.integrations.rq.Worker"
    worker = subprocess.run(
        [tool("rq"), "worker", "--burst", "--url", broker, "--worker-class", worker_class, "jobs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert worker.stderr.count("fails") >= jobs // 5  # RQ reported the failing jobs: they ran
    return worker.stderr


class TestRQ:
    def test_forking_worker_with_the_integration_logs_every_job(
        self, tmp_path: Path, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """``rq worker --worker-class redis_log_handler.integrations.rq.Worker``: 25 jobs, every fifth raising,
        give 25 records, although each work horse ends with ``os._exit``."""
        stderr = run_rq(tmp_path, redis_server, redis_server.url, key, 25, close_timeout=5)
        assert messages_once(client, key) == collections.Counter(f"job {n}" for n in range(25)), stderr
        assert named(stderr, key) == []

    def test_each_work_horse_names_what_redis_never_got(
        self, tmp_path: Path, redis_server: EmbeddedRedis, own_server: EmbeddedRedis, key: str
    ) -> None:
        """The logs' Redis down throughout (close_timeout 1 s): each work horse names its job's record before
        RQ ends it with os._exit: 5 in all."""
        own_server.kill()
        stderr = run_rq(tmp_path, redis_server, own_server.url, key, 5, close_timeout=1)
        lines = named(stderr, key)
        assert (len(lines), sum(line.not_written for line in lines)) == (5, 5), stderr[-3000:]


_DRAMATIQ_APP = """
    import logging, os
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from redis_log_handler import RedisHandler

    dramatiq.set_broker(RedisBroker(url=os.environ["BROKER_URL"]))
    log = logging.getLogger("app")
    if not log.handlers:
        close_timeout = float(os.environ.get("CLOSE_TIMEOUT", "5"))
        log.addHandler(RedisHandler(os.environ["LOG_URL"], os.environ["LOG_KEY"], "list", close_timeout=close_timeout))
        log.setLevel(logging.INFO)

    @dramatiq.actor(max_retries=0)
    def work(number):
        log.info("task %d", number)
        if number < 20:  # Redis is killed after them: their replies read first, so none is sent again
            log.handlers[0].flush(10)
        open(f"done-{number}", "w").close()  # after the logging call returned
        if number % 5 == 4:
            raise ValueError(f"task {number} fails")
"""


class TestDramatiq:
    @pytest.mark.parametrize("redis_back", [True, False], ids=["back", "past-close"])
    def test_every_task_logged_once(
        self,
        tmp_path: Path,
        redis_server: EmbeddedRedis,
        own_server: EmbeddedRedis,
        own_client: redis.Redis,
        key: str,
        redis_back: bool,
    ) -> None:
        """Dramatiq, 2 forked worker processes of 2 threads: 25 tasks (every fifth raising) give 25 records, the
        last 5 logged while the logs' Redis is down: started again at SIGTERM, they are written by the time the
        worker has stopped (which it does within 15 s); still down past close_timeout (1 s), they are named."""
        (tmp_path / "logactors.py").write_text(textwrap.dedent(_DRAMATIQ_APP))
        broker = redis_server.url[: -len("/0")] + "/13"
        env = {**os.environ, "LOG_URL": own_server.url, "LOG_KEY": key, "BROKER_URL": broker}
        env["CLOSE_TIMEOUT"] = "5" if redis_back else "1"
        env["PYTHONPATH"] = python_path(tmp_path)
        command = [tool("dramatiq"), "logactors", "--processes", "2", "--threads", "2"]
        worker = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

        def send(numbers: range) -> None:
            program = f"import logactors\nfor n in {numbers!r}: logactors.work.send(n)"
            subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, timeout=60, check=True)
            wait_until(lambda: all((tmp_path / f"done-{n}").exists() for n in numbers), timeout=60)

        try:
            send(range(20))
            wait_until(lambda: own_client.llen(key) == 20, timeout=30)
            own_server.kill()
            send(range(20, 25))
        finally:
            took, stderr = stop(worker, then=own_server.start if redis_back else lambda: None)
            if not redis_back:
                own_server.start()
        assert took < STOP_WITHIN, stderr[-3000:]
        logged = 25 if redis_back else 20
        assert messages_once(own_client, key) == collections.Counter(f"task {n}" for n in range(logged)), stderr[-3000:]
        assert named_not_written(stderr, key, own_client) == 25 - logged, stderr[-3000:]
