"""A Hypothesis state machine interleaving logging with server kills, freezes, restarts, flushes and forks."""

from __future__ import annotations

import collections
import logging
import os
import uuid
import warnings

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream

pytestmark = pytest.mark.slow


class OutageMachine(RuleBasedStateMachine):
    """One handler and one server of its own; after every flush, Redis holds exactly what was accepted."""

    def __init__(self) -> None:
        super().__init__()
        # AOF with fsync on every write: a kill -9 loses nothing the server acknowledged.
        self.server = EmbeddedRedis("--appendonly", "yes", "--appendfsync", "always").start()
        self.key = f"stateful:{uuid.uuid4().hex}"
        self.handler = RedisHandler(url=self.server.url, key=self.key, socket_timeout=0.3, close_timeout=2)
        self.logger = logging.getLogger(f"tests.stateful.{self.key}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        self.expected: collections.Counter[str] = collections.Counter()
        self.logged = 0
        self.running = True
        self.frozen = False

    @rule(count=st.integers(min_value=1, max_value=300))
    def emit(self, count: int) -> None:
        """Log *count* records, whatever state the server is in (test_faults.py times the calls)."""
        for _ in range(count):
            message = f"record {self.logged}"
            self.logged += 1
            self.logger.info(message)
            self.expected[message] += 1

    @precondition(lambda self: self.running and not self.frozen)
    @rule()
    def kill(self) -> None:
        """kill -9 the server."""
        self.server.kill()
        self.running = False

    @precondition(lambda self: not self.running)
    @rule()
    def restart(self) -> None:
        """Start the server again on its port (AOF brings its data back)."""
        self.server.start()
        self.running = True

    @precondition(lambda self: self.running and not self.frozen)
    @rule()
    def freeze(self) -> None:
        """SIGSTOP the server: writes time out with an unknown outcome."""
        self.server.pause()
        self.frozen = True

    @precondition(lambda self: self.frozen)
    @rule()
    def thaw(self) -> None:
        """SIGCONT the server."""
        self.server.resume()
        self.frozen = False

    @precondition(lambda self: self.running and not self.frozen)
    @rule(count=st.integers(min_value=1, max_value=50))
    def fork(self, count: int) -> None:
        """A forked child logs *count* records and delivers them itself; the parent's records stay the parent's."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for number in range(count):
                    self.logger.info("child %d %d", os.getpid(), number)
                stats = self.handler.stats()
                code = 0 if self.handler.flush(20) and stats["accepted"] == count else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        for number in range(count):
            self.expected[f"child {pid} {number}"] += 1

    @rule()
    def flush(self) -> None:
        """Bring the server back, flush, and check: accepted == unique records in Redis + dropped."""
        if self.frozen:
            self.thaw()
        if not self.running:
            self.restart()
        assert self.handler.flush(30) is True
        client = redis.Redis.from_url(self.server.url)
        documents = read_stream(client, self.key)
        client.close()
        unique = {document["id"]: document["message"] for document in documents}
        assert collections.Counter(unique.values()) == self.expected
        stats = self.handler.stats()
        children = sum(count for message, count in self.expected.items() if message.startswith("child"))
        assert stats["accepted"] == len(unique) - children + stats["dropped"]
        assert stats["dropped"] == 0
        assert stats["buffered"] == 0
        assert len(documents) - len(unique) <= stats["retries_unknown_outcome"]

    def teardown(self) -> None:
        try:
            self.flush()  # every run ends with the check, whatever its last step was
        finally:
            if self.frozen:
                self.server.resume()
            self.handler.close()
        self.logger.removeHandler(self.handler)
        self.server.stop()


OutageMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOutages = OutageMachine.TestCase
