"""What the web page's server reads, without a browser: pages of history, live reads, sharded keys, the filters."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler._cli.main import main
from redis_log_handler._cli.web import reading
from redis_log_handler._cli.web.filters import record_filter
from redis_log_handler._schema.document import iso_timestamp
from redis_log_handler._schema.sources import SOURCES
from redis_log_handler._shared.shards import shard_keys
from redis_log_handler.testing import EmbeddedRedis


def _log(handler: RedisHandler, messages: list[str], level: int = logging.INFO) -> None:
    log = logging.getLogger(f"web-reading.{threading.get_ident()}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        for message in messages:
            log.log(level, message)
    finally:
        log.removeHandler(handler)
    assert handler.flush(10)


def _history(client: redis.Redis, mode: str, keys: list[str], limit: int, query: dict[str, list[str]]) -> list[str]:
    """Every message the pages give, walking back from the newest until the start, oldest first."""
    pages: list[list[str]] = []
    cursor: dict[str, str] = {}
    for _ in range(1000):
        page = reading.older(client, mode, keys, cursor, limit, record_filter(query))
        assert len(page.rows) <= limit
        pages.append([row["record"]["message"] for row in page.rows])
        cursor = page.cursor
        if page.done:
            break
    else:
        pytest.fail("the history never reached the start")
    return [message for page in reversed(pages) for message in page]


def _producers_on_shards(client: redis.Redis, keys: list[str], mode: str, messages: list[str]) -> None:
    """Write *messages* as producers spread unevenly over *keys* do (a handler writes to one shard only)."""
    chooser = random.Random(7)
    for message in messages:
        document = {"@timestamp": iso_timestamp(time.time()), "levelno": 20, "level": "INFO", "message": message}
        shard = chooser.choices(keys, weights=[70, 25, 5][: len(keys)])[0]
        if mode == "stream":
            client.xadd(shard, {"data": json.dumps(document)})
        else:
            client.rpush(shard, json.dumps(document))


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("mode", ["stream", "list"])
def test_history_pages_give_every_record_once_in_time_order(
    client: redis.Redis, key: str, shards: int, mode: str
) -> None:
    """Walking back 37 records at a time gives each of 1,000 records once, in the order they were logged."""
    keys = shard_keys(key, shards)
    messages = [f"record {number}" for number in range(1000)]
    _producers_on_shards(client, keys, mode, messages)
    assert _history(client, mode, keys, 37, {}) == messages


def test_a_handler_s_records_read_back_in_pages(
    client: redis.Redis, key: str, make_handler: Callable[..., RedisHandler], url: str
) -> None:
    """What RedisHandler wrote pages back as it was logged."""
    handler = make_handler(url=url, key=key)
    messages = [f"record {number}" for number in range(500)]
    _log(handler, messages)
    assert _history(client, "stream", [key], 50, {}) == messages


@pytest.mark.parametrize("shards", [1, 3])
def test_a_filter_that_matches_little_still_pages_through_the_whole_stream(
    client: redis.Redis, key: str, monkeypatch: pytest.MonkeyPatch, shards: int
) -> None:
    """Each request looks at a bounded number of entries; the cursor goes on past entries that did not match,
    and shards read to different depths still merge in time order."""
    monkeypatch.setattr(reading, "SCAN_LIMIT", 300)
    keys = shard_keys(key, shards)
    messages = [f"{'needle' if number % 13 == 0 else 'hay'} {number}" for number in range(3000)]
    _producers_on_shards(client, keys, "stream", messages)
    found = _history(client, "stream", keys, 10, {"grep": ["needle"]})
    assert found == [message for message in messages if message.startswith("needle")]


def test_live_reads_move_past_what_the_filters_leave_out(
    client: redis.Redis, key: str, make_handler: Callable[..., RedisHandler], url: str
) -> None:
    """A live read returns the new records that pass, and its cursor is past every entry read."""
    handler = make_handler(url=url, key=key)
    _log(handler, ["before"])
    first = reading.older(client, "stream", [key], {}, 10, record_filter({}))
    _log(handler, ["info 1"])
    _log(handler, ["warning 1"], logging.WARNING)
    rows, after = reading.newer(client, [key], first.newest, record_filter({"level": ["warning"]}))
    assert [row["record"]["message"] for row in rows] == ["warning 1"]
    rows, _ = reading.newer(client, [key], after, record_filter({}))
    assert rows == []


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ({"until": ["2999-01-01T00:00:00+00:00"]}, True),
        ({"until": ["2000-01-01T00:00:00+00:00"]}, False),
        ({"since": ["1d"], "until": ["1d"]}, False),
        ({"field": ["process_name=MainProcess"]}, True),
        ({"field": ["levelno=20"]}, True),
        ({"field": ["levelno=30"]}, False),
        ({"extra": ["user=alice"]}, True),
        ({"extra": ["user=alice", "missing=1"]}, False),
    ],
)
def test_until_field_and_extra(query: dict[str, list[str]], kept: bool) -> None:
    """``until`` keeps what was logged before it; ``field`` and ``extra`` compare a value's text (JSON if not a
    string); every pair must match."""
    document = {
        "@timestamp": "2026-12-07T10:00:00.000000Z",
        "levelno": 20,
        "process_name": "MainProcess",
        "extra": {"user": "alice"},
    }
    assert record_filter(query)(document) is kept


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"level": ["loud"]}, "level must be a level name or number, got 'loud'"),
        ({"grep": ["("]}, "grep must be a regular expression"),
        ({"source": ["syslog"]}, "source must be one of stdlib, loguru, structlog, got 'syslog'"),
        ({"until": ["yesterday"]}, "until must be a duration like 10m"),
        ({"field": ["no-equals-sign"]}, "field must be name=value, got 'no-equals-sign'"),
    ],
)
def test_a_bad_filter_names_its_parameter(query: dict[str, list[str]], message: str) -> None:
    """A filter the page sent that does not parse is a ValueError naming the parameter (the page shows it)."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        record_filter(query)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--host", "0.0.0.0"], "give a token"),  # noqa: S104 - the case tested
        (["--token", "short"], "the token must be at least 16 characters"),
    ],
)
def test_a_token_is_required_off_loopback_and_must_be_long(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before anything is served or connected: one line, exit status 2."""
    monkeypatch.delenv("REDIS_LOG_HANDLER_WEB_TOKEN", raising=False)
    assert main(["web", "--url", "redis://127.0.0.1:1/0", *arguments]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def url(redis_server: EmbeddedRedis) -> str:
    """The session server's URL."""
    return redis_server.url


def test_the_pages_source_choices_are_the_sources() -> None:
    """The page's source filter offers exactly the sources records come from (the one list, ``SOURCES``)."""
    page = (Path(reading.__file__).parent / "page" / "index.html").read_text()
    select = re.search(r'<select name="source">(.*?)</select>', page, re.DOTALL)
    assert select is not None
    assert tuple(re.findall(r"<option>(\w+)</option>", select.group(1))) == SOURCES
