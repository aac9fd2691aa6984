"""The process-wide background runtime: one asyncio event loop in one daemon thread.

Created on first use, shared by every handler in the process, forgotten in a
forked child (which creates its own on first use) and stopped at interpreter
exit after the handlers are closed (see ``exit``). Its thread, selector,
wake-up socket, connections and name lookups are the operating system's own
even where gevent or eventlet patched the standard library (see ``_shared.native``).
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from redis_log_handler._shared.diagnostics import report
from redis_log_handler._shared.fork import after_fork_in_child
from redis_log_handler._shared.native import NativeThread, Reply, default_selector, original, patched

from . import uwsgi
from .backpressure import loop_woke, writer_sleeps
from .reentry import inside
from .wakeup import OWN_WAKEUP, own_make_self_pipe, own_read_from_self, report_wakeup

__all__ = ["Runtime", "get_runtime", "keep_inherited", "stop_runtime"]

_THREAD_NAME = "redis-log-handler"


class _Resolver:
    """Host-name lookups in a thread of our own, started with the runtime.

    asyncio resolves names in the loop's default executor, which refuses work
    once interpreter shutdown has begun ("cannot schedule new futures after
    interpreter shutdown") and cannot start threads then (3.12+): a
    (re)connect from the exit path would fail. This thread exists beforehand.
    """

    def __init__(self) -> None:
        self._requests: Any = original("queue", "SimpleQueue")()
        self._getaddrinfo = original("socket", "getaddrinfo")
        NativeThread(self._serve)

    def _serve(self) -> None:
        while True:
            arguments, future, loop = self._requests.get()
            try:
                result: Any = self._getaddrinfo(*arguments)
            except BaseException as exc:  # delivered to the awaiting coroutine
                result = exc
            try:
                loop.call_soon_threadsafe(_settle, future, result)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def resolve(self, loop: asyncio.AbstractEventLoop, arguments: tuple[Any, ...]) -> asyncio.Future[Any]:
        future = loop.create_future()
        self._requests.put((arguments, future, loop))
        return future


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class _Selector(selectors.BaseSelector):
    """The loop's selector: the platform's own (epoll), never gevent's, which would block on the hub.

    Before it blocks, it tells logging threads that stepped aside for the writer (see ``backpressure``)
    that the writer's turn is over, and what it blocks on.
    """

    def __init__(self) -> None:
        self._inner: selectors.BaseSelector = default_selector()()
        # epoll and kqueue have a descriptor that polls readable while events wait; select() and poll() do not.
        fileno = getattr(self._inner, "fileno", None)
        self._fd: int = fileno() if fileno is not None else -1

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:
            writer_sleeps(self._fd, timeout)
        events = self._inner.select(timeout)
        loop_woke()
        return events


class _RuntimeLoop(asyncio.SelectorEventLoop):
    """The runtime's loop: resolves host names with :class:`_Resolver` instead of the default executor, wakes
    through the operating system's sockets read once per wake-up (``wakeup``), and connects with the operating
    system's sockets where gevent or eventlet patched ``socket`` (theirs would need a hub on this thread)."""

    def __init__(self, resolver: _Resolver) -> None:
        self._resolver = resolver
        super().__init__(_Selector())

    if OWN_WAKEUP:  # asyncio's internals as written for the Pythons the project is tested on (see wakeup)
        _make_self_pipe = own_make_self_pipe
        _read_from_self = own_read_from_self

    async def create_connection(  # the keywords asyncio and redis-py pass
        self, protocol_factory: Callable[[], Any], host: Any = None, port: Any = None, **kwargs: Any
    ) -> tuple[Any, Any]:
        if kwargs.get("sock") is None and host is not None and patched():
            kwargs["sock"] = await self._native_connection(host, port, kwargs.pop("family", 0))
            if kwargs.get("ssl") and kwargs.get("server_hostname") is None:
                kwargs["server_hostname"] = host
            host = port = None
        return await super().create_connection(protocol_factory, host, port, **kwargs)

    async def create_unix_connection(
        self, protocol_factory: Callable[[], Any], path: str | None = None, **kwargs: Any
    ) -> tuple[Any, Any]:
        if kwargs.get("sock") is None and path is not None and patched():
            sock = original("socket", "socket")(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
            kwargs["sock"], path = sock, None
        return await super().create_unix_connection(protocol_factory, path, **kwargs)

    async def _native_connection(self, host: str, port: int | None, family: int) -> socket.socket:
        """A connected, non-blocking socket of the operating system's: each address in turn, the last error raised."""
        error: OSError = OSError(f"no address for {host!r}")
        for address_family, kind, proto, _, address in await self.getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM
        ):
            sock: socket.socket = original("socket", "socket")(address_family, kind, proto)
            sock.setblocking(False)
            try:
                await self.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise error

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        result: list[Any] = await self._resolver.resolve(self, (host, port, family, type, proto, flags))
        return result


class Runtime:
    """An event loop running forever in a daemon OS thread."""

    def __init__(self) -> None:
        report_wakeup()
        self.loop = _RuntimeLoop(_Resolver())
        self.loop.set_exception_handler(_report_loop_exception)
        # Under -X dev asyncio warns about "slow" callbacks; on this loop they
        # only measure GIL waits behind the application's threads.
        self.loop.set_debug(False)
        self._thread = NativeThread(self._run)
        self.thread_id: int = self._thread.ident

    def _run(self) -> None:
        inside.active = True  # whatever is logged on this thread is the handler's own doing
        # Started without threading's bookkeeping: this makes it show by name in threading.enumerate().
        threading.current_thread().name = _THREAD_NAME
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        """Cancel what is left, then close the loop, so nothing is reported as destroyed while pending."""
        loop = self.loop
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> Reply[BaseException | None]:
        """Run *coroutine* on the loop from any other thread; the reply is the exception it raised, or None."""
        reply: Reply[BaseException | None] = Reply()

        def finished(task: asyncio.Task[None]) -> None:
            reply.answer(None if task.cancelled() else task.exception())

        def start() -> None:
            self.loop.create_task(coroutine).add_done_callback(finished)

        try:
            self.loop.call_soon_threadsafe(start)
        except RuntimeError:
            coroutine.close()  # never awaited: say nothing about it
            raise
        return reply

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Schedule *callback* on the loop from any thread."""
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float) -> None:
        """Stop the loop and wait up to *timeout* seconds for its thread to finish."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # closed between the check and the call
            return
        self._thread.join(timeout)


def _report_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # asyncio's default handler logs through the root logger, which may lead
    # back into a RedisHandler; report on stderr instead.
    exception = context.get("exception")
    detail = f": {exception!r}" if exception is not None else ""
    report("asyncio", f"event loop error: {context.get('message', 'unknown')}{detail}")


_lock = threading.Lock()
_runtime: Runtime | None = None
_runtime_ready: threading.Event | None = None  # set once the runtime being started is there


def get_runtime() -> Runtime:
    """Return the process's runtime, starting it on first use.

    The runtime is built without holding a lock: building the loop logs
    ("Using selector"), and a record logged while a lock is held could need
    that lock again. Other threads that want it meanwhile wait on an event.
    """
    global _runtime, _runtime_ready
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is not None:
            return _runtime
        ready = _runtime_ready
        builder = ready is None
        if builder:
            ready = _runtime_ready = threading.Event()
    assert ready is not None
    if not builder:
        ready.wait()  # the application's own Event: under gevent it yields to the hub
        if _runtime is None:
            raise RuntimeError("the redis_log_handler runtime failed to start")
        return _runtime
    try:
        uwsgi.warn_brutal_stop()
        if not uwsgi.threads_allowed():
            raise uwsgi.ThreadsRefused(uwsgi.THREADS_REFUSED)
        uwsgi.warn_without_threads()
        built = Runtime()
        with _lock:
            _runtime = built
    finally:
        with _lock:
            _runtime_ready = None  # after a failed start, the next caller tries again
        ready.set()
    return built


# Objects a forked child inherited from its parent's runtime. The child keeps
# them referenced forever: if they were garbage-collected, redis-py's and
# asyncio's finalizers could close the inherited sockets through the inherited
# loop, whose epoll instance the parent shares, and take the parent's
# connections out of its event loop (the parent then waits a full socket
# timeout for replies that arrived, and retries: duplicates).
_inherited: list[object] = []


def keep_inherited(*objects: object) -> None:
    """In a forked child, keep the parent's runtime objects alive and untouched."""
    _inherited.extend(item for item in objects if item is not None)


def _forget_in_child() -> None:
    # The child inherits the loop object but not its thread: using it would
    # hang the child, and closing it would stall the parent.
    global _lock, _runtime, _runtime_ready
    keep_inherited(_runtime)
    _lock = threading.Lock()
    _runtime = None
    _runtime_ready = None


after_fork_in_child(_forget_in_child)


def stop_runtime(timeout: float) -> None:
    """Stop this process's runtime, if it runs, waiting up to *timeout* seconds for its thread."""
    runtime = _runtime
    if runtime is not None:
        runtime.stop(timeout)
