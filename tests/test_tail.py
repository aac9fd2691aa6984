"""The tail command: the last records, filters, escaping, following, and never changing what it reads."""

from __future__ import annotations

import io
import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest
import redis

from redis_log_handler._cli.main import main
from redis_log_handler._cli.tail_format import escape, text_lines
from redis_log_handler._schema.document import iso_timestamp
from redis_log_handler.testing import EmbeddedRedis

from .helpers import wait_until
from .readers import documents, write_list, write_stream


def tail(capsys: pytest.CaptureFixture[str], *arguments: str) -> list[str]:
    """Run ``tail`` in this process; its output lines (exit status 0 asserted)."""
    assert main(["tail", *arguments]) == 0
    return capsys.readouterr().out.splitlines()


class TestLast:
    def test_last_n_oldest_first(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """-n N shows the newest N records, oldest first, one line each."""
        write_stream(client, key, documents(2500, "app"))
        lines = tail(capsys, "--url", redis_server.url, "--key", key, "-n", "1500")
        assert len(lines) == 1500
        assert lines[0].endswith("app: record 1000  number=1000")
        assert lines[-1].endswith("app: record 2499  number=2499")
        assert lines[-1].startswith(f"{iso_timestamp(1_700_002_499)} INFO     stdlib    ")
        assert tail(capsys, "--url", redis_server.url, "--key", key)[0].endswith(
            "record 2490  number=2490"
        )  # default 10

    def test_filters_combine(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--level, --logger, --source, --grep and --since all apply, across reads of many chunks."""
        docs = documents(3000, "app.db") + documents(3000, "application", 3000)
        for number, document in enumerate(docs):
            document["level"], document["levelno"] = ("ERROR", 40) if number % 3 == 0 else ("INFO", 20)
            document["source"] = "loguru" if number % 2 == 0 else "stdlib"
            document["@timestamp"] = iso_timestamp(time.time() - 7200 + number)  # the newest are ~1 h old
        write_stream(client, key, docs)
        arguments = ["--url", redis_server.url, "--key", key, "-n", "4", "--level", "warning", "--logger", "app"]
        lines = tail(capsys, *arguments, "--source", "loguru", "--grep", r"record \d*[05]$", "--since", "2h")
        # ERROR and loguru: multiples of 6; message ending in 0 or 5: multiples of 30; logger app or app.x: < 3000
        assert [line.rsplit("=", 1)[1] for line in lines] == ["2880", "2910", "2940", "2970"]
        assert all(" ERROR    loguru    app.db: " in line for line in lines)
        assert tail(capsys, *arguments, "--since", "30m") == []

    def test_json(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json prints each record's document as one line of JSON."""
        docs = documents(3, "app")
        write_stream(client, key, docs)
        lines = tail(capsys, "--url", redis_server.url, "--key", key, "--json")
        assert [json.loads(line) for line in lines] == docs

    def test_list_and_read_only(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """tail reads a list's tail and a stream without popping, acknowledging or creating a group."""
        write_list(client, key, documents(2500, "app"))
        lines = tail(capsys, "--url", redis_server.url, "--key", key, "--mode", "list", "-n", "1200")
        assert [line.rsplit("=", 1)[1] for line in lines] == [str(n) for n in range(1300, 2500)]
        assert client.llen(key) == 2500
        stream = f"{key}:stream"
        write_stream(client, stream, documents(5, "app"))
        tail(capsys, "--url", redis_server.url, "--key", stream, "-n", "3")
        assert client.xlen(stream) == 5
        assert client.xinfo_groups(stream) == []

    def test_a_list_is_read_as_a_list_without_mode(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A key holding a list (the README's list-mode key, say) is read as a list without --mode."""
        write_list(client, key, documents(30, "app"))
        lines = tail(capsys, "--url", redis_server.url, "--key", key, "-n", "5")
        assert [line.rsplit("=", 1)[1] for line in lines] == ["25", "26", "27", "28", "29"]

    @pytest.mark.parametrize(
        ("held", "arguments", "message"),
        [
            ("string", [], "holds a string, not log records (a stream, or a list in list mode): check --key"),
            ("hash", ["--mode", "list"], "holds a hash, not log records"),
            ("list", ["--mode", "stream"], "holds a list, not a stream: give --mode list, or leave --mode out"),
            ("stream", ["--mode", "list"], "holds a stream, not a list: give --mode stream"),
        ],
    )
    def test_a_key_of_another_type_is_one_line_naming_it(
        self,
        redis_server: EmbeddedRedis,
        client: redis.Redis,
        key: str,
        capsys: pytest.CaptureFixture[str],
        held: str,
        arguments: list[str],
        message: str,
    ) -> None:
        """A key that holds no log records, or not what --mode says: one line naming the key, what it holds and
        the fix; status 2."""
        {
            "string": lambda: client.set(key, "x"),
            "hash": lambda: client.hset(key, "a", "b"),
            "list": lambda: write_list(client, key, documents(1, "app")),
            "stream": lambda: write_stream(client, key, documents(1, "app")),
        }[held]()
        assert main(["tail", "--url", redis_server.url, "--key", key, *arguments]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"redis-log-handler tail: error: {key!r} at redis://127.0.0.1:{redis_server.port}/0 ")
        assert message in line

    def test_an_entry_that_is_not_a_record(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An entry that is not a record is one escaped line naming its entry id (and hidden by any filter)."""
        entry_id = client.xadd(key, {"data": "\x1b]0;pwned\x07"}).decode()
        (line,) = tail(capsys, "--url", redis_server.url, "--key", key)
        assert line.startswith(f"? {entry_id} not a log record: the payload is not JSON")
        assert tail(capsys, "--url", redis_server.url, "--key", key, "--level", "debug") == []

    def test_extra_fields_follow_the_message(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A record's extra fields follow its message on the same line: plain words as they are, the rest as JSON."""
        (document,) = documents(1, "app")
        document["extra"] = {"order": "A-17", "items": [1, 2], "note": "two words", "user": {"id": 5}}
        write_stream(client, key, [document])
        (line,) = tail(capsys, "--url", redis_server.url, "--key", key)
        assert line.endswith('app: record 0  order=A-17 items=[1, 2] note="two words" user={"id": 5}')


class TestEscaping:
    EVIL = "clear\x1b[2J ret\roverwrite bell\x07 \ud800 rtl\u202etxt.exe\nFAKE 2026 ERROR line"

    def test_every_control_character_is_escaped(
        self, redis_server: EmbeddedRedis, client: redis.Redis, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Escape sequences, carriage returns, bells, lone surrogates and newlines never reach the terminal raw."""
        (document,) = documents(1, "app\x1b[31m")
        document["message"] = self.EVIL
        document["source"] = "x\x9b2J"  # a C1 control: CSI on some terminals
        document["exception"] = {"type": "E", "message": "", "traceback": "Traceback\n  evil\x1b[8m hidden"}
        client.xadd(key, {"data": json.dumps(document)})  # ASCII JSON: the surrogate travels as an escape
        for arguments in ([], ["--json"]):
            out = "\n".join(tail(capsys, "--url", redis_server.url, "--key", key, *arguments))
            assert not any((ord(char) < 0x20 and char != "\n") or 0x7F <= ord(char) <= 0x9F for char in out)
            assert "\ud800" not in out
            assert "\u202e" not in out
        text = tail(capsys, "--url", redis_server.url, "--key", key)
        assert len(text) == 3  # the record's line, then two traceback lines: the message's newline is escaped
        assert "app\\x1b[31m: clear\\x1b[2J ret\\roverwrite bell\\x07 \\ud800 rtl\\u202etxt.exe\\nFAKE" in text[0]
        assert text[2] == "      evil\\x1b[8m hidden"

    def test_escape(self) -> None:
        """Printable text, tabs aside, passes unchanged; the rest is shown as escapes."""
        assert escape("plain ünïcode ✓ \\ path") == "plain ünïcode ✓ \\ path"
        assert escape("a\tb\x00c\x7f\u2028") == "a\\tb\\x00c\\x7f\\u2028"

    def test_colour_only_on_a_terminal_without_no_color(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Levels are coloured on a terminal; NO_COLOR turns it off."""
        (document,) = documents(1, "app")
        document["level"] = "ERROR"
        assert "\x1b[31mERROR   \x1b[0m" in text_lines(document, colour=True)[0]
        assert "\x1b" not in text_lines(document, colour=False)[0]

        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        from redis_log_handler._cli.tail import _Printer  # noqa: PLC0415
        from redis_log_handler._cli.tail_format import RecordFilter  # noqa: PLC0415

        monkeypatch.setenv("NO_COLOR", "1")
        assert not _Printer(RecordFilter(), as_json=False, out=Terminal())._colour
        monkeypatch.delenv("NO_COLOR")
        assert _Printer(RecordFilter(), as_json=False, out=Terminal())._colour


TAIL = [sys.executable, "-m", "redis_log_handler", "tail"]


def reader_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines *process* prints, as they come."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.slow
def test_follow(redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
    """-f shows records written after it started, within about a second, until interrupted."""
    write_stream(client, key, documents(5, "app"))
    process = subprocess.Popen(
        [*TAIL, "--url", redis_server.url, "--key", key, "-n", "1", "-f"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        lines = reader_of(process)
        assert lines.get(timeout=10).endswith("record 4  number=4")
        write_stream(client, key, documents(3, "app", 5))
        assert [lines.get(timeout=5).rsplit("=", 1)[1] for _ in range(3)] == ["5", "6", "7"]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_follow_waits_for_a_key_that_does_not_exist_yet(
    redis_server: EmbeddedRedis, client: redis.Redis, key: str
) -> None:
    """-f on a missing key says so once on stderr, then shows the records once the key appears."""
    process = subprocess.Popen(
        [*TAIL, "--url", redis_server.url, "--key", key, "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert process.stderr is not None
        message = (
            f"redis-log-handler tail: no records in {key!r} at {redis_server.url} "
            "(the key does not exist or is empty); waiting for records\n"
        )
        assert process.stderr.readline() == message
        lines = reader_of(process)
        write_stream(client, key, documents(2, "app"))
        assert [lines.get(timeout=5).rsplit("=", 1)[1] for _ in range(2)] == ["0", "1"]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_pubsub_shows_what_is_published(redis_server: EmbeddedRedis, client: redis.Redis, key: str) -> None:
    """On a channel, tail shows published records and stops after -n of them."""
    process = subprocess.Popen(
        [*TAIL, "--url", redis_server.url, "--key", key, "--mode", "pubsub", "-n", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = reader_of(process)
    wait_until(lambda: client.pubsub_numsub(key)[0][1] == 1)
    for document in documents(3, "app"):
        client.publish(key, json.dumps(document))
    assert process.wait(timeout=10) == 0
    assert [lines.get(timeout=5).rsplit("=", 1)[1] for _ in range(2)] == ["0", "1"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--level", "loud"], "argument --level: must be a level name or number, got 'loud'"),
        (["--since", "yesterday"], "argument --since: must be a duration like 10m, 2h, 1d or an ISO-8601 time"),
        (["--grep", "("], "argument --grep: must be a regular expression"),
        (["-n", "-1"], "argument -n/--lines: must be a whole number >= 0, got '-1'"),
        (["--mode", "list", "-f"], "error: -f cannot follow the list"),
    ],
)
def test_bad_arguments(
    arguments: list[str], message: str, redis_server: EmbeddedRedis, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments are one line and status 2."""
    try:
        status = main(["tail", "--url", redis_server.url, "--key", key, *arguments])
    except SystemExit as exited:
        status = int(exited.code or 0)
    assert status == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line
