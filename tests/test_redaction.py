"""A password with URL-special characters never shows: repr, diagnostics, stats, command output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
import redis

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler.testing import EmbeddedRedis

from .helpers import wait_until
from .readers import new_logger_name

pytestmark = pytest.mark.slow

PASSWORD = "p@ss:w%rd/x"  # noqa: S105 - the test server's
WRONG = "wr@ng:pa%ss"


@pytest.fixture(scope="module")
def protected() -> Iterator[EmbeddedRedis]:
    """A server that requires PASSWORD."""
    with EmbeddedRedis("--requirepass", PASSWORD) as server:
        yield server


def url_with(server: EmbeddedRedis, password: str) -> str:
    """The server's URL with *password*, percent-encoded as a URL requires."""
    return f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0"


def assert_hidden(text: str) -> None:
    """Neither password appears in *text*, raw or percent-encoded."""
    for secret in (PASSWORD, WRONG):
        assert secret not in text
        assert quote(secret, safe="") not in text


def test_the_right_password_works_and_never_shows(
    protected: EmbeddedRedis, key: str, make_handler: Callable[..., RedisHandler]
) -> None:
    """The password authenticates; repr() of the handler and the consumer, stats and the heartbeat hide it."""
    url = url_with(protected, PASSWORD)
    handler = make_handler(url=url, key=key, heartbeat=0.2)
    handler.handle(logging.makeLogRecord({"msg": "hello", "name": new_logger_name()}))
    assert handler.flush(10) is True
    with redis.Redis.from_url(url) as client:
        assert client.xlen(key) == 1
        wait_until(lambda: client.hlen(f"{key}:producers") == 1)
        assert_hidden(str(client.hgetall(f"{key}:producers")))
    assert_hidden(repr(handler))
    assert_hidden(repr(RedisLogConsumer(url=url, key=key)))
    assert_hidden(str(handler.stats()))


def test_a_wrong_password_is_reported_without_it(
    protected: EmbeddedRedis, key: str, make_handler: Callable[..., RedisHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused password: the diagnostic, stats()['last_error'] and the consumer's report never carry it."""
    url = url_with(protected, WRONG)
    handler = make_handler(url=url, key=key)
    handler.handle(logging.makeLogRecord({"msg": "hello", "name": new_logger_name()}))
    assert handler.flush(1.0) is False
    stats = handler.stats()
    assert stats["last_error"]
    consumer = RedisLogConsumer(url=url, key=key)
    with pytest.raises(redis.exceptions.RedisError) as refused:
        next(consumer.records())
    consumer.close()
    err = capsys.readouterr().err
    assert err
    for text in (err, str(stats), str(refused.value), repr(handler)):
        assert_hidden(text)


def test_handle_error_reports_never_carry_it(
    protected: EmbeddedRedis, key: str, make_handler: Callable[..., RedisHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    """A record that fails in emit (bad format arguments) is reported with a traceback that hides the password."""
    handler = make_handler(url=url_with(protected, PASSWORD), key=key)
    handler.handle(logging.makeLogRecord({"msg": "%d items", "args": ("many",), "name": new_logger_name()}))
    assert handler.flush(10) is True
    err = capsys.readouterr().err
    assert "error while handling a record" in err
    assert_hidden(err)


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["tail"],
        ["demo", "--records", "10"],
        ["consume", "--config", os.devnull + ".json"],
    ],
)
def test_commands_never_print_it(protected: EmbeddedRedis, command: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each command refused by the server prints one line with the password hidden."""
    if command[0] == "consume":
        config = tmp_path / "logging.json"
        config.write_text('{"version": 1}')
        command = ["consume", "--config", str(config)]
    result = subprocess.run(
        [sys.executable, "-m", "redis_log_handler", *command, "--url", url_with(protected, WRONG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert ":***@127.0.0.1" in line
    assert_hidden(result.stdout + result.stderr)
