"""The writer's socket: the receive low-water mark that lets one wake-up see every reply of a round trip."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from redis_log_handler._shared.resp import frame
from redis_log_handler._writer.settings import WriterSettings
from redis_log_handler._writer.transport import writer_socket as _writer_socket
from redis_log_handler._writer.transport.batch_commands import BatchCommands
from redis_log_handler._writer.transport.writer_socket import MIN_REPLY_BYTES, WriterSocket
from redis_log_handler.testing import EmbeddedRedis

from .helpers import connection_over


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two ends of a loopback TCP connection (the low-water mark is a TCP feature on Linux, not a Unix-socket one)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    with ours, theirs:
        yield ours, theirs


def readable(sock: socket.socket, timeout: float = 0.0) -> bool:
    """Whether select() reports *sock* readable within *timeout* seconds."""
    return bool(select.select([sock], [], [], timeout)[0])


def test_the_mark_holds_the_wake_up_until_every_reply_could_be_there(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    """After expect(3), 8 bytes do not make the socket readable and 12 do; after the first reply, 1 byte does."""
    ours, theirs = tcp_pair
    writer_socket = WriterSocket(connection_over(ours))
    assert writer_socket.fd == ours.fileno()
    writer_socket.expect(3)
    assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 3 * MIN_REPLY_BYTES
    theirs.sendall(b":1\r\n:1\r\n")
    assert not readable(ours, 0.2)  # 8 bytes are queued, fewer than three replies need
    theirs.sendall(b":1\r\n")
    assert readable(ours, 5.0)
    assert ours.recv(64) == b":1\r\n" * 3
    writer_socket.reply_came()
    theirs.sendall(b"+")
    assert readable(ours, 5.0)


def test_tls_connections_and_unknown_internals_are_left_alone(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    """On TLS the socket carries TLS records, so no mark is set; without redis-py's internals there is no socket."""
    ours, _ = tcp_pair
    WriterSocket(connection_over(ours, tls=True)).expect(100)
    assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
    unknown = WriterSocket(object())
    assert unknown.fd == -1
    unknown.expect(100)  # nothing to tune: no error either


def test_the_send_buffer_is_raised_only_where_it_beats_autotuning(
    tcp_pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked for where the system allows more than autotuning reaches; otherwise autotuning stays in charge."""
    ours, theirs = tcp_pair
    monkeypatch.setattr(_writer_socket, "_raising_the_send_buffer_helps", lambda: True)
    WriterSocket(connection_over(ours))
    explicit_cap = int(Path("/proc/sys/net/core/wmem_max").read_text())
    assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= min(_writer_socket.SEND_BUFFER, explicit_cap)
    monkeypatch.setattr(_writer_socket, "_raising_the_send_buffer_helps", lambda: False)
    before = theirs.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    WriterSocket(connection_over(theirs))
    assert theirs.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before


@pytest.mark.parametrize("mode", ["stream", "pubsub"])
def test_the_first_wake_up_sees_every_reply_of_a_round_trip(redis_server: EmbeddedRedis, key: str, mode: str) -> None:
    """16 batches pipelined to a real server: the scripts reply 4 bytes each, so one read after one wake gets all."""
    settings = WriterSettings.build(url=redis_server.url, key=key, mode=mode)
    batches = [[frame(b'{"n":%d}' % number) for number in range(500)] for _ in range(16)]
    with socket.create_connection(("127.0.0.1", redis_server.port)) as sock:
        writer_socket = WriterSocket(connection_over(sock))
        writer_socket.expect(len(batches))
        sock.sendall(BatchCommands(settings, key).command(batches, idempotent=False))
        assert readable(sock, 30.0)
        assert sock.recv(1 << 16) == b":1\r\n" * len(batches)


class TestRedisPyInternals:
    def test_a_real_connection_keeps_its_socket_where_the_writer_looks(
        self, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """redis-py as installed: a connected asyncio connection's private stream writer carries the socket the
        writer tunes and back-pressure polls, and nothing is said on stderr."""
        assert _writer_socket._written_for(redis.__version__)

        async def found() -> tuple[int, int]:
            client = redis.asyncio.Redis.from_url(redis_server.url)
            connection = await client.connection_pool.get_connection()
            try:
                sock = connection._writer.transport.get_extra_info("socket")
                return WriterSocket(connection).fd, sock.fileno()
            finally:
                await client.connection_pool.release(connection)
                await client.aclose()

        fd, expected = asyncio.run(found())
        assert fd == expected >= 0
        assert "writer-socket" not in capsys.readouterr().err

    def test_another_redis_py_is_left_alone_and_said(
        self,
        tcp_pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A redis-py release the writer was not written for: its private attribute is not touched (no socket,
        no tuning), and one line on stderr says what that costs."""
        assert [_writer_socket._written_for(v) for v in ("5.2.1", "5.3.0", "8.2.0", "9.0.0", "dev")] == [
            False, True, True, False, False,
        ]  # fmt: skip
        monkeypatch.setattr(_writer_socket, "_REDIS_PY_AS_EXPECTED", False)
        ours, _ = tcp_pair
        unknown = WriterSocket(connection_over(ours))
        assert unknown.fd == -1
        unknown.expect(100)
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        assert "back-pressure does not see its replies" in capsys.readouterr().err
