"""The runtime's event loop: its wake-up socket is read once per wake-up, and no wake-up is lost; the asyncio
internals it overrides are as it assumes, and without them it runs asyncio's own wake-up and says so."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import pytest

from redis_log_handler._writer import wakeup
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


class TestAsyncioInternals:
    def test_the_overrides_run_on_every_python_the_project_is_tested_on(self) -> None:
        """3.11 to 3.13 (the classifiers) have the internals the wake-up overrides, so the runtime's own runs."""
        assert wakeup.WRITTEN_FOR == ((3, 11), (3, 13))
        assert wakeup.OWN_WAKEUP is True
        assert _RuntimeLoop._make_self_pipe is wakeup.own_make_self_pipe  # type: ignore[comparison-overlap]
        assert _RuntimeLoop._read_from_self is wakeup.own_read_from_self  # type: ignore[comparison-overlap]

    def test_asyncios_loop_holds_what_the_overrides_touch(self) -> None:
        """What ``own_make_self_pipe`` and ``own_read_from_self`` read and write is there on asyncio's own
        selector loop: the socket pair, the count of internal descriptors, the reader and the data handler."""
        plain = asyncio.SelectorEventLoop()
        try:
            assert plain._ssock.fileno() in plain._selector.get_map()  # type: ignore[attr-defined]
            assert plain._csock.fileno() >= 0  # type: ignore[attr-defined]
            assert plain._internal_fds == 1  # type: ignore[attr-defined]
            assert callable(plain._process_self_data)  # type: ignore[attr-defined]
        finally:
            plain.close()

    def test_on_another_python_asyncios_own_wake_up_runs_and_says_so(self) -> None:
        """A Python the overrides were not written for (3.14 here, by its version number): the runtime keeps
        asyncio's wake-up, says so once on stderr, and records still go out."""
        child = subprocess.run(
            [sys.executable, "-c", _ANOTHER_PYTHON],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.split() == ["False", "True", "500"]
        assert child.stderr.count("asyncio's own runs") == 1


_ANOTHER_PYTHON = """
import logging, sys
sys.version_info = (3, 14, 0, "final", 0)  # what the gate reads
from redis_log_handler import RedisHandler
from redis_log_handler._writer import runtime, wakeup
from redis_log_handler.testing import InMemoryTransport
memory = InMemoryTransport()
handler = RedisHandler(transport=memory)
log = logging.getLogger("another")
log.addHandler(handler)
for number in range(500):
    log.warning("%d", number)
print(wakeup.OWN_WAKEUP, runtime._RuntimeLoop._read_from_self is runtime.asyncio.SelectorEventLoop._read_from_self)
print(handler.flush(10) and len(memory.messages()))
handler.close()
"""
