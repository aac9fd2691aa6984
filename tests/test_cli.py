"""The redis-log-handler command: one-line errors with argparse's exit statuses, and the demo end to end."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import redis

import redis_log_handler
from redis_log_handler._cli.main import main
from redis_log_handler._shared.checks import DEFAULT_URL
from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import alive, paste, read_stream, shell_environment, wait_until

pytestmark = pytest.mark.slow


def run_command(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m redis_log_handler`` as a user would (a process of its own: the demo configures frameworks),
    in the shell of the README's install (:func:`shell_environment`), where the commands it prints are pasted."""
    environment = shell_environment()
    return subprocess.run(
        [sys.executable, "-m", "redis_log_handler", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, **(env or {})},
    )


def one_line(text: str) -> str:
    """The only line of *text*; fails if there are more (or none)."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


class TestArguments:
    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (["--threads", "0"], "argument --threads: must be from 1 to 1,000, got '0'"),
            (["--threads", "1001"], "argument --threads: must be from 1 to 1,000, got '1001'"),
            (["--threads", "many"], "argument --threads: must be a whole number, got 'many'"),
            (["--records", "0"], "argument --records: must be at least 1, got '0'"),
            (["--records", "-5"], "argument --records: must be at least 1, got '-5'"),
            (
                ["--url", "http//oops"],
                "argument --url: must start with redis://, rediss://, unix://, redis+sentinel://",
            ),
            (["--url", "redis://:7000/0"], "argument --url: must have a host, got 'redis://:7000/0'"),
            (["--url", "redis://localhost:99999/0"], "argument --url: is malformed (Port out of range 0-65535)"),
        ],
    )
    def test_bad_argument_is_one_line_with_status_2(
        self, arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each bad argument gives one line naming it, and exit status 2, before anything is started."""
        with pytest.raises(SystemExit) as exited:
            main(["demo", *arguments])
        assert exited.value.code == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"redis-log-handler demo: error: {message}")
        assert line.endswith("(see redis-log-handler demo --help)")

    def test_usage_errors_outside_an_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown option: a usage error too (no command at all prints the help: TestCommands)."""
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--verbose"])
        assert exited.value.code == 2
        assert one_line(capsys.readouterr().err).startswith("redis-log-handler: error: unrecognized arguments")

    def test_bad_redis_url_from_the_environment(self) -> None:
        """A malformed $REDIS_URL is reported like a bad --url, with the password hidden."""
        result = run_command("demo", env={"REDIS_URL": "http://user:hunter2@host/0"})
        assert result.returncode == 2
        line = one_line(result.stderr)
        assert "argument --url: must start with redis://" in line
        assert "hunter2" not in line
        assert "user:***@host" in line

    def test_help_is_plain_text_with_defaults(self) -> None:
        """--help has no reST markup, and says each option's default and range."""
        result = run_command("demo", "--help")
        assert result.returncode == 0
        assert "``" not in result.stdout
        text = " ".join(result.stdout.split())
        assert "threads logging at once, 1 to 1,000 (default: 8)" in text
        assert "records to log in all (default: 100000)" in text
        assert "it must not exist yet, or hold only an earlier demo's records" in text


class TestServerProblems:
    def test_unreachable_server_is_one_line_with_status_1(self) -> None:
        """Nothing listening at --url: one line with the redacted URL, status 1, no traceback."""
        port = _free_port()
        result = run_command("demo", "--url", f"redis://app:p%40ss:w0rd@127.0.0.1:{port}/0")
        assert result.returncode == 1
        line = one_line(result.stderr)
        assert line.startswith(f"redis-log-handler demo: cannot reach Redis at redis://app:***@127.0.0.1:{port}/0 (")
        assert "Connection refused" in line
        assert "w0rd" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr

    def test_wrong_password_is_one_line_with_status_1(self) -> None:
        """A server that refuses the password: one line, status 1, the password hidden."""
        with EmbeddedRedis("--requirepass", "right") as server:
            url = server.url.replace("redis://", "redis://:wrong@")
            result = run_command("demo", "--url", url)
        assert result.returncode == 1
        line = one_line(result.stderr)
        assert line.startswith("redis-log-handler demo: cannot reach Redis at redis://:***@127.0.0.1:")
        assert "wrong" not in line


class TestDemo:
    def test_logs_every_record_through_three_frameworks(self, redis_server: EmbeddedRedis, client: redis.Redis) -> None:
        """The demo logs exactly --records records (not a multiple of --threads) into a new key that expires."""
        result = run_command("demo", "--url", redis_server.url, "--records", "1003", "--threads", "4")
        assert result.returncode == 0, result.stderr
        info = client.info("server")
        name = f"Valkey {info['valkey_version']}" if "valkey_version" in info else f"Redis {info['redis_version']}"
        assert result.stdout.startswith(f"Using {name} at redis://127.0.0.1:{redis_server.port}/0\n")
        key = re.search(r"into stream '([^']+)'", result.stdout)
        assert key is not None
        documents = read_stream(client, key[1])
        assert len(documents) == 1003
        assert {document["source"] for document in documents} == {"stdlib", "loguru", "structlog"}
        assert not [document["logger"] for document in documents if "._" in document["logger"]]  # no private module
        assert 0 < client.ttl(key[1]) <= 3600
        assert "everything delivered  : yes" in result.stdout
        assert result.stderr == ""
        shown = result.stdout.split("The last 5 records, as tail shows them:\n")[1].split("\n\n")[0].splitlines()
        assert len(shown) == 5
        for line, document in zip(shown, documents[-5:], strict=True):
            assert f"{document['logger']}: {document['message']}" in line

    def test_more_threads_than_records(self, redis_server: EmbeddedRedis, client: redis.Redis) -> None:
        """Seven records from eight threads are seven records."""
        result = run_command("demo", "--url", redis_server.url, "--records", "7", "--threads", "8")
        assert result.returncode == 0, result.stderr
        assert "Logging 7 records from 7 threads" in result.stdout
        key = re.search(r"into stream '([^']+)'", result.stdout)
        assert key is not None
        assert client.xlen(key[1]) == 7

    def test_refuses_a_key_holding_other_data(self, redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
        """--key naming a key the demo did not write: one line, status 2, and the key is left as it was."""
        client.xadd(key, {"data": json.dumps({"service": "billing", "message": "keep me"})})
        result = run_command("demo", "--url", redis_server.url, "--key", key, "--records", "10")
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"redis-log-handler demo: error: --key {key!r} already holds data the demo did not write; "
            "name a new key or leave --key out"
        )
        assert [document["message"] for document in read_stream(client, key)] == ["keep me"]
        client.set(f"{key}:string", "not a stream")
        result = run_command("demo", "--url", redis_server.url, "--key", f"{key}:string", "--records", "10")
        assert result.returncode == 2
        assert client.get(f"{key}:string") == b"not a stream"

    def test_replaces_an_earlier_demo_on_the_same_key(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str
    ) -> None:
        """Run twice on one --key: the second run replaces the first run's records."""
        for records in ("50", "20"):
            result = run_command("demo", "--url", redis_server.url, "--key", key, "--records", records)
            assert result.returncode == 0, result.stderr
        assert client.xlen(key) == 20

    def test_starts_and_names_a_throwaway_server(self) -> None:
        """Without --url or $REDIS_URL the demo starts a server of its own and says which one it is."""
        result = run_command("demo", "--records", "100", "--threads", "2")
        assert result.returncode == 0, result.stderr
        assert re.match(r"Started a throwaway (Redis|Valkey) \d+\.\d+\.\d+ server for the demo: ", result.stdout)
        assert "The throwaway server is stopped now" in result.stdout
        (suggested,) = re.findall(r"Run '([^']+)'", result.stdout)
        assert suggested.endswith("redis-log-handler demo --keep")
        version = paste(suggested.removesuffix(" demo --keep") + " --version")
        assert version.returncode == 0, version.stderr  # the program it names runs where the demo ran

    def test_the_next_step_it_prints_works(self, redis_server: EmbeddedRedis) -> None:
        """With --url, the demo ends with a tail command that shows its records when pasted."""
        result = run_command("demo", "--url", redis_server.url, "--records", "30")
        assert result.returncode == 0, result.stderr
        command = printed_tail(result.stdout)
        assert shlex.split(command)[2:4] == ["--url", redis_server.url]
        shown = paste(command)
        assert shown.returncode == 0, shown.stderr
        assert len(records_in(shown.stdout)) == 20

    def test_keep_serves_the_throwaway_server_until_ctrl_c(self) -> None:
        """--keep: the throwaway server answers the printed tail command until Ctrl-C, then it is stopped."""
        environment = shell_environment()  # where the command it prints is pasted
        demo = subprocess.Popen(
            [sys.executable, "-m", "redis_log_handler", "demo", "--records", "40", "--keep"],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        assert demo.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()  # type: ignore[union-attr]
        printed = ""
        try:
            while "In another terminal:" not in printed:
                try:
                    printed += lines.get(timeout=60)
                except queue.Empty:
                    pytest.fail(f"no next step within 60 s of the last line: {printed}")
            printed += lines.get(timeout=10)  # the command itself
            command = printed_tail(printed)
            shown = paste(command)
            assert shown.returncode == 0, shown.stderr
            assert len(records_in(shown.stdout)) == 20
        finally:
            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=30) == 0
        assert paste(command).returncode == 1  # the server is gone


def server_on(port: int) -> int:
    """The pid of the redis-server (or valkey-server) on *port* (it shows ``127.0.0.1:PORT`` as its title)."""
    title = f"127.0.0.1:{port}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes()
        except OSError:
            continue
        if b"-server" in command and title in command:
            return int(cmdline.parent.name)
    raise AssertionError(f"no server on port {port}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_demo_keep_never_outlives_the_demo(stop: str) -> None:
    """However demo --keep ends (Ctrl-C, kill, the terminal closed, kill -9), its throwaway server ends with it."""
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "redis_log_handler", "demo", "--records", "40", "--keep"],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert demo.stdout is not None
    printed = ""
    try:
        while "In another terminal:" not in printed:
            line = demo.stdout.readline()
            assert line, printed
            printed += line
        port = int(re.findall(r"127\.0\.0\.1:(\d+)", printed)[0])
        server = server_on(port)
        assert alive(server)
    finally:
        demo.send_signal(getattr(signal, stop))
        try:
            demo.wait(timeout=30)
        finally:
            if demo.poll() is None:  # the signal was lost: fail without leaving the demo and its server behind
                demo.kill()
    wait_until(lambda: not alive(server), timeout=10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_an_embedded_server_ends_with_a_killed_owner(tmp_path: Path) -> None:
    """A test process killed with SIGKILL (no exit hook runs) takes its EmbeddedRedis with it."""
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from redis_log_handler.testing import EmbeddedRedis\n"
            "server = EmbeddedRedis().start(); print(server.process.pid, flush=True); time.sleep(120)",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    server = int(owner.stdout.readline())
    assert alive(server)
    owner.kill()
    owner.wait(timeout=10)
    wait_until(lambda: not alive(server), timeout=10)


def records_in(printed: str) -> list[str]:
    """The record lines tail printed (a traceback's lines are indented under its record)."""
    return [line for line in printed.splitlines() if not line.startswith(" ")]


def printed_tail(printed: str) -> str:
    """The ``tail`` command the demo printed as its last line, without ``-f`` (which would not return)."""
    command = printed.rstrip().splitlines()[-1].strip()
    assert shlex.split(command)[1] == "tail", printed
    assert command.endswith(" -f"), printed
    return command.removesuffix(" -f")


class TestCommands:
    def test_the_bare_command_prints_the_help(self) -> None:
        """``redis-log-handler`` alone prints the help, with every command, and exits with status 2."""
        result = run_command()
        assert result.returncode == 2
        assert result.stderr.startswith("usage: redis-log-handler")
        assert all(f"    {command}  " in result.stderr for command in ("demo", "tail", "consume", "status"))

    def test_version(self) -> None:
        """--version prints the installed version."""
        result = run_command("--version")
        assert result.returncode == 0
        assert result.stdout.strip() == f"redis-log-handler {redis_log_handler.__version__}"

    @pytest.mark.parametrize("command", [["tail", "--key", "app:logs", "-n", "5"], ["status", "--key", "app:logs"]])
    def test_default_url_without_redis_url(self, command: list[str]) -> None:
        """No --url and no $REDIS_URL: redis://localhost:6379/0, as --help says; never a traceback.

        Read-only on whatever answers there: either it answers (status 0) or one line says it cannot be reached.
        """
        result = run_command(*command)
        assert "Traceback" not in result.stderr
        assert result.returncode in (0, 1), result.stderr
        if result.returncode == 1:
            assert f"cannot reach Redis at {DEFAULT_URL} (" in one_line(result.stderr)

    def test_tail_shows_a_structlog_record_with_its_module_and_fields(
        self, redis_server: EmbeddedRedis, key: str
    ) -> None:
        """A plain structlog event, logged by one program and shown by tail in another: the calling module as
        its logger, its fields after the message."""
        program = (
            "import structlog, sys\n"
            "from redis_log_handler import RedisHandler, StructlogProcessor\n"
            "handler = RedisHandler(url=sys.argv[1], key=sys.argv[2])\n"
            "chain = [structlog.processors.add_log_level, StructlogProcessor(handler, drop=True)]\n"
            "structlog.configure(processors=chain)\n"
            "structlog.get_logger().info('order accepted', order='A-17')\n"
        )
        logged = subprocess.run(
            [sys.executable, "-c", program, redis_server.url, key],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert logged.returncode == 0, logged.stderr
        shown = run_command("tail", "--url", redis_server.url, "--key", key)
        assert shown.returncode == 0, shown.stderr
        assert one_line(shown.stdout).endswith(" INFO     structlog __main__: order accepted  order=A-17")

    def test_tail_says_when_the_key_does_not_exist(self, redis_server: EmbeddedRedis, key: str) -> None:
        """tail on a key that does not exist: one line on stderr, status 0; with -f it waits for the key."""
        result = run_command("tail", "--url", redis_server.url, "--key", key)
        assert (result.returncode, result.stdout) == (0, "")
        where = f"{key!r} at {redis_server.url}"
        assert (
            one_line(result.stderr)
            == f"redis-log-handler tail: no records in {where} (the key does not exist or is empty)"
        )


def test_an_embedded_server_leaves_no_directory_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A server made only for its URL (never started: a Redis that is down) makes no directory; one started
    and stopped removes its own; a restart keeps it (what the server wrote survives a kill)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    EmbeddedRedis()
    assert list(tmp_path.iterdir()) == []
    server = EmbeddedRedis("--appendonly", "yes").start()
    directory = server.directory
    server.restart()
    assert server.directory == directory
    server.stop()
    assert list(tmp_path.iterdir()) == []
