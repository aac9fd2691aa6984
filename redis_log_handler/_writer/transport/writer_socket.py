"""The writer's socket, found under redis-py's connection and tuned so a round trip wakes the runtime thread rarely.

Every time the runtime thread wakes up it needs the GIL back, and under
sustained load the application's threads hold it: each wake-up costs the
writer up to a switch interval (5 ms) and the application a hand-off. Without
tuning, a round trip of several pipelined batches wakes the loop once for each
reply, since Redis answers each batch as it finishes it.

The receive low-water mark (``SO_RCVLOWAT``) fixes that: before a round trip
is sent, the socket is told not to report itself readable until at least
:data:`MIN_REPLY_BYTES` per expected reply are there. Every reply the writer
waits for is at least that long (``:0\\r\\n``, ``+OK\\r\\n``, any error), so
the mark never asks for more than the complete replies hold, and the scripts
of stream and pubsub mode always reply ``:1`` or ``:0``, so there the mark is
exactly the size of the replies: the loop wakes once, with every reply in.
After the first reply is read the mark goes back to 1 byte (what is left may
be shorter than the mark counts). ``poll`` honours the mark too, so
back-pressure's "has the reply come?" means "have all replies come?".

The send buffer (``SO_SNDBUF``) is raised to :data:`SEND_BUFFER` where the
system lets an explicit size exceed what TCP's autotuning would reach (on Linux
``net.core.wmem_max`` against the top of ``net.ipv4.tcp_wmem``): a round trip of
several megabytes then goes out in one system call, instead of a write, a wait
for room and another write, each a wake-up. Elsewhere autotuning is left alone.

Left alone on TLS connections (the socket carries TLS records, which the TLS
layer may read ahead of the replies) and wherever the platform refuses the
option (then nothing changes but the number of wake-ups).

The socket is found through redis-py's private ``connection._writer`` (its
asyncio stream writer), as redis-py 5.3 to 8.x keep it (:data:`WRITTEN_FOR`).
With another redis-py, or where it is not there, there is no socket: nothing is
tuned, and back-pressure never takes a write in progress for a writer that
could run (logging threads then do not step aside during writes: under
sustained load more records may meet the overflow policy). A line on stderr
says so once.
"""

from __future__ import annotations

import contextlib
import functools
import select
import socket
from typing import Any

import redis

from redis_log_handler._shared.diagnostics import report

__all__ = ["MIN_REPLY_BYTES", "SEND_BUFFER", "WRITTEN_FOR", "WriterSocket", "ready_now"]

WRITTEN_FOR = ((5, 3), (8, 99))  # the redis-py releases whose connections keep their stream writer in ``_writer``

MIN_REPLY_BYTES = 4  # the shortest reply the writer can get: ":0\r\n"
# Asked for (Linux doubles it for its bookkeeping): holds a round trip of 16 batches of typical records.
SEND_BUFFER = 4 << 20


def _written_for(version: str) -> bool:
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    low, high = WRITTEN_FOR
    return low <= major_minor <= high


_REDIS_PY_AS_EXPECTED = _written_for(redis.__version__)


def _no_socket(why: str) -> None:
    report(
        "writer-socket",
        f"{why}: the writer's socket is not tuned and back-pressure does not see its replies "
        "(logging threads do not step aside during writes)",
    )


@functools.cache
def _raising_the_send_buffer_helps() -> bool:
    """Whether asking for SEND_BUFFER gets more than TCP's autotuning would reach (known on Linux only)."""
    try:
        with open("/proc/sys/net/core/wmem_max") as limit, open("/proc/sys/net/ipv4/tcp_wmem") as autotuning:
            explicit_cap, autotuned_cap = int(limit.read()), int(autotuning.read().split()[2])
    except (OSError, ValueError, IndexError):
        return False
    return 2 * min(SEND_BUFFER, explicit_cap) > autotuned_cap


class WriterSocket:
    """The socket under one redis-py asyncio connection: its descriptor, send buffer and receive low-water mark."""

    __slots__ = ("_mark", "_socket", "fd")

    def __init__(self, connection: Any) -> None:
        self.fd = -1
        self._socket: Any = None
        self._mark = 1
        if not _REDIS_PY_AS_EXPECTED:
            _no_socket(f"redis-py {redis.__version__} is not a release this one was written for")
            return
        try:  # redis-py keeps its asyncio stream writer private
            transport = connection._writer.transport
            sock = transport.get_extra_info("socket")
            self.fd = int(sock.fileno())
            tunable = transport.get_extra_info("sslcontext") is None and hasattr(socket, "SO_RCVLOWAT")
        except (AttributeError, OSError, ValueError) as exc:
            _no_socket(f"redis-py {redis.__version__}'s connection has no socket where expected ({exc!r})")
            return
        if not tunable:
            return
        self._socket = sock
        if _raising_the_send_buffer_helps():
            with contextlib.suppress(OSError):  # refused: autotuning stays in charge
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)

    def expect(self, replies: int) -> None:
        """Before a round trip is sent: do not wake the loop before *replies* replies could be complete."""
        self._set_mark(max(1, replies * MIN_REPLY_BYTES))

    def reply_came(self) -> None:
        """The first reply was read: wake the loop for any byte again."""
        self._set_mark(1)

    def _set_mark(self, mark: int) -> None:
        if self._socket is None or mark == self._mark:
            return
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, mark)
        except OSError:  # refused by the platform: keep waking for every byte
            self._socket = None
            return
        self._mark = mark


def ready_now(fd: int, *, writable: bool = False) -> bool:
    """Whether *fd* is readable (or writable, or in error) right now, without waiting; False if it cannot be polled.

    ``poll`` rather than ``select``: a process with more than 1024 open descriptors (a busy server) gets
    descriptors ``select`` refuses, and back-pressure would quietly stop.
    """
    if fd < 0:
        return False
    wanted = (select.POLLOUT if writable else select.POLLIN) | select.POLLERR | select.POLLHUP
    poller = select.poll()
    try:
        poller.register(fd, wanted)
        return any(events & wanted for _, events in poller.poll(0))  # a closed descriptor gives POLLNVAL
    except (OSError, ValueError):
        return False
