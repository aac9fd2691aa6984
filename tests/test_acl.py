"""Least-privilege ACL users, as docs/production.md lists them: each works with exactly its permissions."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler._cli.main import main
from redis_log_handler.testing import EmbeddedRedis

from .helpers import log_through, read_list, read_stream, wait_until
from .readers import collecting, documents, new_logger_name, running, write_list, write_stream

pytestmark = pytest.mark.slow

# The permissions docs/production.md documents, for a key (and channel) named "logs:app".
WRITER = {
    "stream": "+eval +xadd +xlen +xtrim +expire",
    "list": "+rpush +ltrim +expire",
    "pubsub": "+eval +publish",
}
# Stream consumers trim what every group acknowledged (retention): one script, and the commands inside it.
RETENTION = "+eval +xinfo|stream +xpending +xtrim +xgroup|setid"
CONSUMER = {
    "stream": f"+xreadgroup +xack +xautoclaim +xgroup|create +xinfo|groups +xadd +ping {RETENTION}",
    "list": "+lpop +blpop +lpush +llen +xadd +ping",
}
TAIL = "+xrevrange +xread +lrange +type +ping"
KEY = "logs:app"


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A server of the test's own (its users are the test's)."""
    with EmbeddedRedis() as started:
        yield started


def user(server: EmbeddedRedis, name: str, permissions: str) -> str:
    """Create *name* with only *permissions* on the keys and channels ``logs:*``; returns its URL."""
    with redis.Redis.from_url(server.url) as admin:
        rules = ["on", ">secret", "resetkeys", "~logs:*", "resetchannels", "&logs:*", "-@all", *permissions.split()]
        admin.acl_setuser(name, reset=True, passwords=None, commands=None, keys=None, channels=None)
        admin.execute_command("ACL", "SETUSER", name, *rules)
    return f"redis://{name}:secret@127.0.0.1:{server.port}/0"


@pytest.mark.parametrize("mode", ["stream", "list", "pubsub"])
def test_the_writer_needs_only_its_permissions(
    mode: str, server: EmbeddedRedis, make_handler: Callable[..., RedisHandler]
) -> None:
    """The handler writes in each mode (with maxlen and ttl where they apply) as a user with WRITER[mode]."""
    options = {"maxlen": 1000, "ttl": 60} if mode != "pubsub" else {}
    handler = make_handler(url=user(server, "shipper", WRITER[mode]), key=KEY, mode=mode, **options)
    log_through(handler, 200)
    assert handler.flush(10) is True
    assert handler.stats()["written"] == 200
    if mode != "pubsub":
        with redis.Redis.from_url(server.url) as admin:
            read = read_stream if mode == "stream" else read_list
            assert [int(document["message"]) for document in read(admin, KEY)] == list(range(200))


def test_one_permission_fewer_is_reported_once_and_counted(
    server: EmbeddedRedis, make_handler: Callable[..., RedisHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without +xadd every batch is refused (a permission error inside the script): dropped, counted, one line."""
    handler = make_handler(url=user(server, "shipper", "+eval +xlen +xtrim +expire"), key=KEY, batch_size=50)
    log_through(handler, 200)
    handler.flush(10)
    stats = handler.stats()
    assert stats["dropped_error"] == stats["dropped"] == 200
    assert stats["written"] == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Redis refused" in line]
    assert len(lines) == 1, err
    assert "can't run this command" in lines[0] or "ACL failure" in lines[0]  # Redis 7, Valkey


@pytest.mark.parametrize("mode", ["stream", "list"])
def test_the_consumer_needs_only_its_permissions(mode: str, server: EmbeddedRedis) -> None:
    """The consumer reads, acknowledges, claims and dead-letters as a user with CONSUMER[mode]."""
    name = new_logger_name()
    with redis.Redis.from_url(server.url) as admin:
        (write_stream if mode == "stream" else write_list)(admin, KEY, documents(100, name))
        if mode == "stream":
            admin.xadd(KEY, {"data": "poison"})
        else:
            admin.rpush(KEY, "poison")
        url = user(server, "reader", CONSUMER[mode])
        consumer = RedisLogConsumer(url=url, key=KEY, mode=mode, block=0.1, claim_idle=1.0, retain=0)
        with collecting(name) as collector, running(consumer):
            wait_until(lambda: len(collector.records) == 100)
            wait_until(lambda: consumer.stats()["dead_lettered"] == 1)
            wait_until(lambda: consumer.stats()["lag"] == 0)
            if mode == "stream":
                wait_until(lambda: consumer.stats()["trimmed"] == 101)  # the poison entry was acknowledged too
        assert admin.xlen(f"{KEY}:dead") == 1
        if mode == "stream":
            assert admin.xpending(KEY, "redis-log-handler")["pending"] == 0
            assert admin.xlen(KEY) == 0


def test_a_consumer_without_a_permission_raises(server: EmbeddedRedis) -> None:
    """Without +xack the consumer raises the server's NOPERM error rather than retrying for ever."""
    with redis.Redis.from_url(server.url) as admin:
        write_stream(admin, KEY, documents(10, "app"))
    url = user(server, "reader", CONSUMER["stream"].replace("+xack", ""))
    consumer = RedisLogConsumer(url=url, key=KEY, block=0.1, batch_size=5)
    with pytest.raises(redis.exceptions.NoPermissionError):
        for _ in consumer.records():
            pass
    consumer.close()


def test_a_consumer_without_the_retention_permissions_reads_on(
    server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without +eval the consumer reads and acknowledges everything, keeps every entry, and says so once."""
    name = new_logger_name()
    with redis.Redis.from_url(server.url) as admin:
        write_stream(admin, KEY, documents(100, name))
        url = user(server, "reader", CONSUMER["stream"].replace("+eval", ""))
        consumer = RedisLogConsumer(url=url, key=KEY, block=0.1, retain=0)
        with collecting(name) as collector, running(consumer):
            wait_until(lambda: len(collector.records) == 100)
            wait_until(lambda: consumer.stats()["acked"] == 100)
        assert admin.xlen(KEY) == 100
    assert capsys.readouterr().err.count("retention is off") == 1


def test_tail_needs_only_read_permissions(server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]) -> None:
    """tail reads a stream and a list as a user with TAIL."""
    with redis.Redis.from_url(server.url) as admin:
        write_stream(admin, KEY, documents(5, "app"))
        write_list(admin, f"{KEY}:list", documents(5, "app"))
    url = user(server, "viewer", TAIL)
    assert main(["tail", "--url", url, "--key", KEY]) == 0
    assert main(["tail", "--url", url, "--key", f"{KEY}:list"]) == 0  # read as what it holds
    assert len(capsys.readouterr().out.splitlines()) == 10


def test_tail_without_type_reads_with_mode(server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]) -> None:
    """A viewer without +type: tail reads a stream as before and a list with --mode list; a list without --mode
    is one line saying what to give."""
    with redis.Redis.from_url(server.url) as admin:
        write_stream(admin, KEY, documents(5, "app"))
        write_list(admin, f"{KEY}:list", documents(5, "app"))
    url = user(server, "viewer", TAIL.replace(" +type", ""))
    assert main(["tail", "--url", url, "--key", KEY]) == 0
    assert main(["tail", "--url", url, "--key", f"{KEY}:list", "--mode", "list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 10
    assert main(["tail", "--url", url, "--key", f"{KEY}:list"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"'{KEY}:list' at redis://viewer:***@" in line
    assert "holds something else than a stream: give --mode list" in line


def test_status_without_the_key_permissions_says_so(server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]) -> None:
    """status as a user that may read the heartbeats but not the key: one line says so, status 0."""
    with redis.Redis.from_url(server.url) as admin:
        write_stream(admin, KEY, documents(10, "app"))
    assert main(["status", "--url", user(server, "watcher", "+hgetall +ping"), "--key", KEY]) == 0
    assert f"key {KEY}: cannot be read (NoPermissionError: " in capsys.readouterr().out
