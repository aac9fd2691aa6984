"""The runtime's event loop: its wake-up socket is read once per wake-up, and no wake-up is lost."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from redis_log_handler._writer.runtime import _Resolver, _RuntimeLoop, get_runtime


class _CountingSocket:
    """The loop's wake-up socket, counting the reads made on it."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.reads = 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        data: bytes = self.sock.recv(size)
        return data


@pytest.fixture
def loop() -> Any:
    """A runtime loop that is not running, with its wake-up socket's reads counted."""
    runtime_loop = _RuntimeLoop(_Resolver())
    real = runtime_loop._ssock  # type: ignore[attr-defined]
    runtime_loop._ssock = _CountingSocket(real)  # type: ignore[attr-defined]
    yield runtime_loop
    runtime_loop._ssock = real  # type: ignore[attr-defined]
    runtime_loop.close()


def test_one_wake_up_is_one_read(loop: Any) -> None:
    """A byte or two waiting: one read empties the socket (asyncio's own loop reads again until it fails)."""
    loop._write_to_self()
    loop._write_to_self()
    loop._read_from_self()
    assert loop._ssock.reads == 1
    with pytest.raises(BlockingIOError):
        loop._ssock.sock.recv(1)


def test_a_full_read_reads_on(loop: Any) -> None:
    """5,000 bytes waiting (more than one read takes): reads go on until one comes back short."""
    loop._csock.send(b"\0" * 5000)
    loop._read_from_self()
    assert loop._ssock.reads == 2
    with pytest.raises(BlockingIOError):
        loop._ssock.sock.recv(1)


def test_every_callback_runs_however_many_wake_ups_pile_up() -> None:
    """10,000 callbacks scheduled from 4 threads on the running runtime: every one runs."""
    runtime = get_runtime()
    ran: list[int] = []
    done = threading.Event()
    total = 10_000

    def note(number: int) -> None:
        ran.append(number)
        if len(ran) == total:
            done.set()

    def schedule(start: int) -> None:
        for number in range(start, total, 4):
            runtime.call_soon(note, number)

    threads = [threading.Thread(target=schedule, args=(start,)) for start in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done.wait(10)
    assert sorted(ran) == list(range(total))
