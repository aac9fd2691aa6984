"""The disk spill under bursts the writer cannot keep up with: logging threads spill themselves, nothing is lost.

No test here paces its burst: every thread logs in a tight loop, as a retry
storm or a traceback in a hot loop would, while Redis is down.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream, wait_until

pytestmark = pytest.mark.slow
MakeHandler = Callable[..., RedisHandler]
BUFFER = 1000
# A logging call that waited on Redis would take at least a socket timeout (5 s by default); one that
# spills writes a chunk to a local file. Half the socket timeout tells the two apart on a busy shared
# machine, where a thread can wait a quarter of a second for the GIL alone.
CALLER_BOUND = RedisHandler(key="bound").settings.socket_timeout / 2


def burst(logger: logging.Logger, threads: int, per_thread: int) -> float:
    """Log *per_thread* records "<thread> <n>" from each of *threads* threads at once; the slowest call in seconds."""
    gate = threading.Barrier(threads)
    slowest = [0.0] * threads

    def work(thread: int) -> None:
        gate.wait()
        clock = time.perf_counter
        for number in range(per_thread):
            started = clock()
            logger.info("%d %d", thread, number)
            slowest[thread] = max(slowest[thread], clock() - started)

    workers = [threading.Thread(target=work, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return max(slowest)


def delivered(server: EmbeddedRedis, key: str) -> list[dict[str, Any]]:
    """Every document in the stream *key* (the server must be up)."""
    client = redis.Redis.from_url(server.url)
    try:
        return read_stream(client, key)
    finally:
        client.close()


def per_thread(documents: list[dict[str, Any]]) -> dict[int, list[int]]:
    """The record numbers each thread's documents carry, in the order they are in Redis."""
    numbers: dict[int, list[int]] = collections.defaultdict(list)
    for document in documents:
        thread, number = document["message"].split()
        numbers[int(thread)].append(int(number))
    return numbers


class TestNoDropsWhileTheDiskHasRoom:
    @pytest.mark.parametrize("threads", [1, 8])
    def test_tight_loop_of_50_buffers_with_redis_down(
        self,
        tmp_path: Path,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        threads: int,
    ) -> None:
        """50x buffer_size logged as fast as the threads can: zero drops, every record once, each thread in order."""
        handler = make_handler(url=own_server.url, key=key, buffer_size=BUFFER, spill_dir=tmp_path)
        logger.addHandler(handler)
        own_server.kill()
        total = 50 * BUFFER
        slowest = burst(logger, threads, total // threads)
        stats = handler.stats()
        assert (stats["accepted"], stats["dropped"], stats["buffered"]) == (total, 0, total), stats
        assert stats["spilled"] >= total - 2 * BUFFER - threads  # at most memory and one round trip are not on disk
        assert slowest < CALLER_BOUND
        own_server.start()
        assert handler.flush(60) is True
        documents = delivered(own_server, key)
        assert len(documents) == len({document["id"] for document in documents}) == total
        assert per_thread(documents) == {thread: list(range(total // threads)) for thread in range(threads)}
        stats = handler.stats()
        assert (stats["written"], stats["dropped"], stats["buffered"], stats["spill_bytes"]) == (total, 0, 0, 0)
        assert stats["replayed"] == stats["spilled"]
        assert list(tmp_path.iterdir()) == []


class TestSpillFull:
    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
    def test_drops_are_counted_exactly_once_the_spill_is_full(
        self,
        tmp_path: Path,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        overflow: str,
    ) -> None:
        """Past spill_max_bytes the overflow policy applies: what is missing in Redis is exactly what was counted."""
        handler = make_handler(
            url=own_server.url,
            key=key,
            buffer_size=BUFFER,
            spill_dir=tmp_path,
            spill_max_bytes=1_000_000,  # a few thousand records of this size
            overflow=overflow,
        )
        logger.addHandler(handler)
        own_server.kill()
        total = 50 * BUFFER
        burst(logger, 1, total)
        stats = handler.stats()
        assert stats["spill_bytes"] <= 1_000_000
        assert stats["dropped"] == stats["dropped_overflow"] > 0
        assert stats["accepted"] == total == stats["buffered"] + stats["dropped"]
        own_server.start()
        assert handler.flush(60) is False  # False: records were dropped since the last flush
        numbers = per_thread(delivered(own_server, key))[0]
        assert len(numbers) == total - stats["dropped_overflow"] == handler.stats()["written"]
        assert numbers == sorted(set(numbers))  # in order, none twice
        if overflow == "drop_newest":
            assert numbers == list(range(len(numbers)))  # the oldest are kept, the newest refused
        else:
            assert numbers[-BUFFER:] == list(range(total - BUFFER, total))  # the newest are kept


class TestDiskRefusesWhileMemoryIsFull:
    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
    def test_the_overflow_policy_applies_and_every_drop_is_counted(
        self,
        tmp_path: Path,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
        overflow: str,
    ) -> None:
        """The disk refuses every spill while 4 threads log 20 buffers: memory holds what it can, the rest is counted.

        What reaches Redis afterwards is exactly what was not counted as dropped, each thread's records in
        order and none twice, and the refusal is said once on stderr.
        """
        spill_dir = tmp_path / "spill"
        handler = make_handler(url=own_server.url, key=key, buffer_size=BUFFER, spill_dir=spill_dir, overflow=overflow)
        logger.addHandler(handler)
        spill_dir.rmdir()
        spill_dir.write_text("a file where the directory was")  # every segment create now fails (even as root)
        own_server.kill()
        threads, total = 4, 20 * BUFFER
        burst(logger, threads, total // threads)
        stats = handler.stats()
        assert stats["spilled"] == 0
        assert stats["dropped"] == stats["dropped_overflow"] > 0, stats
        assert stats["accepted"] == total == stats["buffered"] + stats["dropped"], stats
        # The buffer (over by at most one record per thread appending at the instant it filled), and at most
        # one round trip held for retry.
        assert stats["buffered"] <= 2 * BUFFER + threads, stats
        own_server.start()
        assert handler.flush(60) is False  # False: records were dropped since the last flush
        documents = delivered(own_server, key)
        assert len(documents) == len({document["id"] for document in documents})
        assert len(documents) == total - stats["dropped"] == handler.stats()["written"]
        kept = per_thread(documents)
        assert set(kept) <= set(range(threads))  # a thread that logged only while memory was full kept nothing
        assert all(numbers == sorted(numbers) for numbers in kept.values())
        assert len(documents) >= BUFFER  # memory held its share to the end
        if overflow == "drop_newest":
            # A full buffer refuses the newcomers (room frees only when the writer takes a round trip to
            # retry) and never evicts what it took, so the first record of the burst is kept.
            assert any(numbers[0] == 0 for numbers in kept.values())
        else:
            # The oldest make room, whichever thread logged them: the thread that finished last kept its last.
            assert any(numbers[-1] == total // threads - 1 for numbers in kept.values())
        assert capsys.readouterr().err.count("spilling pauses") == 1


_KILLED_MID_BURST = """
    import logging, os, signal, sys
    from redis_log_handler import RedisHandler

    url, key, spill_dir, total, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    handler = RedisHandler(url=url, key=key, spill_dir=spill_dir, buffer_size=1000)
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for number in range(total):
        if number == kill_at:
            print(handler.stats()["spilled"], flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        log.info("0 %d", number)
"""


class TestCrashMidBurst:
    def test_next_process_replays_what_reached_disk(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler
    ) -> None:
        """A process killed with SIGKILL in the middle of a burst: the next one replays what was on disk, in order."""
        down = EmbeddedRedis()  # never started: nothing listens there
        script = textwrap.dedent(_KILLED_MID_BURST)
        arguments = [down.url, key, str(tmp_path), "50000", "30000"]
        result = subprocess.run(
            [sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == -signal.SIGKILL, result.stderr
        spilled = int(result.stdout)
        assert spilled >= 30000 - 2 * BUFFER - 1
        handler = make_handler(url=own_server.url, key=key, spill_dir=tmp_path)  # never logs anything itself
        wait_until(lambda: handler.stats()["recovered"] == spilled, timeout=30)
        numbers = per_thread(delivered(own_server, key))[0]
        # The disk held a run of consecutive records: memory and the round trip in flight died with the process.
        assert numbers == list(range(numbers[0], numbers[0] + spilled))
        assert os.listdir(tmp_path) == []
