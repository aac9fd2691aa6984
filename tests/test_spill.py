"""The disk spill on its own: segments, bounds, adoption by the next process, corrupt tails."""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler._shared.resp import frame
from redis_log_handler._writer.spill.spill import Spill
from redis_log_handler.testing import EmbeddedRedis

from .helpers import read_stream, wait_until

MakeHandler = Callable[..., RedisHandler]


def records(count: int, start: int = 0, size: int = 100) -> list[bytes]:
    """*count* distinct records of about *size* bytes."""
    return [f"{number:08d}".encode().ljust(size, b".") for number in range(start, start + count)]


def store(spill: Spill, documents: list[bytes]) -> int:
    """Spill *documents* as the intake does (it hands over framed documents); returns how many were stored."""
    return spill.store([frame(document) for document in documents])


def drain(spill: Spill, limit: int = 1000) -> list[bytes]:
    """Replay everything *spill* holds, committing as it goes."""
    replayed = []
    while spill.has_records:
        batch, _ = spill.peek(limit)
        if not batch:
            break
        replayed.extend(batch)
        spill.commit(len(batch))
    return replayed


def segments(directory: Path) -> list[Path]:
    """The segment files in *directory*, oldest first."""
    return sorted(directory.glob("*.seg"))


class TestSpill:
    def test_round_trip_in_order_across_segments(self, tmp_path: Path) -> None:
        """Records come back in the order they were spilled, across many segments, which are then deleted."""
        spill = Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20)  # 128 KiB segments
        written = records(5000)
        for start in range(0, 5000, 700):
            assert store(spill, written[start : start + 700]) == len(written[start : start + 700])
        assert len(segments(tmp_path)) > 3
        assert spill.pending_own == 5000
        assert drain(spill, limit=333) == written
        assert (spill.spilled, spill.replayed, spill.recovered, spill.pending_own) == (5000, 5000, 0, 0)
        assert segments(tmp_path) == []
        assert spill.bytes == 0

    def test_bounded_by_max_bytes(self, tmp_path: Path) -> None:
        """store() stops at max_bytes and says how many records it took; the disk holds no more than that."""
        spill = Spill(str(tmp_path), "logs", "stream", max_bytes=200_000)
        taken = store(spill, records(5000))
        assert 0 < taken < 5000
        assert sum(path.stat().st_size for path in segments(tmp_path)) == spill.bytes <= 200_000
        assert drain(spill) == records(taken)

    def test_appends_during_replay_keep_order(self, tmp_path: Path) -> None:
        """Records spilled while older ones are being replayed come after them."""
        spill = Spill(str(tmp_path), "logs", "list", max_bytes=1 << 20)
        store(spill, records(10))
        first, _ = spill.peek(4)
        spill.commit(len(first))
        store(spill, records(10, start=10))
        assert first + drain(spill, limit=3) == records(20)


_WRITER = """
    import os, sys
    from redis_log_handler._writer.spill.spill import Spill
    from redis_log_handler._shared.resp import frame

    spill = Spill(sys.argv[1], "logs", "stream", max_bytes=1 << 20)
    spill.store([frame(b"%08d" % number) for number in range(int(sys.argv[2]))])
    batch, _ = spill.peek(int(sys.argv[3]))
    if batch:
        spill.commit(len(batch))  # as if these reached Redis before the crash
    os.kill(os.getpid(), 9)
"""


def spill_and_die(directory: Path, count: int, committed: int = 0) -> None:
    """A process that spills *count* records, replays *committed* of them and is killed with SIGKILL."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WRITER), str(directory), str(count), str(committed)], check=False
    )
    assert result.returncode == -9


def adopt_in_another_process(directory: Path, key: str) -> int:
    """How many segments of *key* a separate process can adopt from *directory* now."""
    script = (
        "from redis_log_handler._writer.spill.spill import Spill\n"
        f"print(Spill({str(directory)!r}, {key!r}, 'stream', 1).adopt())"
    )
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)


class TestAdoption:
    def test_next_process_replays_what_a_killed_one_left(self, tmp_path: Path) -> None:
        """Segments of a process killed with SIGKILL are adopted by the next one, minus what it had committed."""
        spill_and_die(tmp_path, 1000, committed=300)
        spill = Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20)
        assert spill.adopt() == 1
        replayed = drain(spill)
        assert replayed == [b"%08d" % number for number in range(300, 1000)]
        assert (spill.recovered, spill.pending_own, spill.corrupt) == (700, 0, 0)
        assert segments(tmp_path) == []

    def test_live_owner_keeps_its_segments(self, tmp_path: Path) -> None:
        """A segment whose writer is alive (it holds the lock) is never adopted by another process."""
        owner = Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20)
        store(owner, records(10))
        assert adopt_in_another_process(tmp_path, "logs") == 0
        assert drain(owner) == records(10)

    def test_other_keys_are_left_alone(self, tmp_path: Path) -> None:
        """Only segments of the same key and mode are adopted."""
        spill_and_die(tmp_path, 10)
        assert Spill(str(tmp_path), "other", "stream", max_bytes=1 << 20).adopt() == 0
        assert Spill(str(tmp_path), "logs", "list", max_bytes=1 << 20).adopt() == 0
        assert Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20).adopt() == 1

    def test_segment_being_created_is_left_alone(self, tmp_path: Path) -> None:
        """A fresh temporary segment (its creator is locking and renaming it) is not touched; an old one is removed."""
        spill_and_die(tmp_path, 10)
        prefix = segments(tmp_path)[0].name.split(".")[0]
        fresh = tmp_path / f"{prefix}.00000000000000000001.1.a.tmp"
        old = tmp_path / f"{prefix}.00000000000000000002.1.b.tmp"
        fresh.write_bytes(b"")
        old.write_bytes(b"")
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        fd = os.open(fresh, os.O_RDWR)
        try:
            assert Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20).adopt() == 1
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its creator can still lock it: nobody holds it
        finally:
            os.close(fd)
        assert fresh.exists()
        assert not old.exists()

    def test_truncated_tail_is_skipped_and_counted(self, tmp_path: Path) -> None:
        """A segment cut off mid-record replays its whole records, counts the torn tail, and is deleted."""
        spill_and_die(tmp_path, 100)
        (segment,) = segments(tmp_path)
        os.truncate(segment, segment.stat().st_size - 3)
        spill = Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20)
        spill.adopt()
        assert drain(spill) == [b"%08d" % number for number in range(99)]
        assert spill.corrupt == 1
        assert segments(tmp_path) == []

    def test_flipped_byte_and_foreign_file_are_skipped(self, tmp_path: Path) -> None:
        """A checksum mismatch ends the segment there; a file that is not a segment is counted and removed."""
        spill_and_die(tmp_path, 100)
        (segment,) = segments(tmp_path)
        data = bytearray(segment.read_bytes())
        data[16 + 16 * 50 + 4] ^= 0xFF  # the 51st record's checksum (16-byte header, 16 bytes a record)
        segment.write_bytes(bytes(data))
        prefix = segment.name.split(".")[0]
        (tmp_path / f"{prefix}.99999999999999999999.1.x.seg").write_bytes(b"not a segment")
        spill = Spill(str(tmp_path), "logs", "stream", max_bytes=1 << 20)
        assert spill.adopt() == 2
        assert drain(spill) == [b"%08d" % number for number in range(50)]
        assert spill.corrupt == 2
        assert segments(tmp_path) == []


_SPILLING_PROCESS = """
    import logging, os, signal, sys, time
    from redis_log_handler import RedisHandler

    url, key, spill_dir, count, end = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    handler = RedisHandler(url=url, key=key, spill_dir=spill_dir, spill_after=0, socket_timeout=0.5, close_timeout=1)
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for number in range(count):
        log.info("%s %d", os.environ.get("NAME", "first"), number)
    deadline = time.monotonic() + 30
    while handler.stats()["spilled"] < count and time.monotonic() < deadline:
        handler.flush(0.05)  # waits on the drain task; Redis is down, so this only paces the loop
    print(handler.stats()["spilled"], flush=True)
    if end == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if end == "wait":  # until the test has brought Redis back
        sys.stdin.readline()
        print(handler.flush(30), handler.stats()["dropped"], flush=True)
"""


def start_spilling_process(
    url: str, key: str, spill_dir: Path, count: int, end: str, name: str = "first"
) -> subprocess.Popen[str]:
    """A process that logs *count* records while Redis is down, waits until all are on disk, then ends as *end* says."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SPILLING_PROCESS), url, key, str(spill_dir), str(count), end],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NAME": name},
    )


def spill_while_down(server: EmbeddedRedis, handler: RedisHandler, logger: logging.Logger) -> None:
    """Kill *server*, log 100 numbered records and wait until the handler has them all on disk."""
    server.kill()
    for number in range(100):
        logger.info("%d", number)
    wait_until(lambda: handler.stats()["spilled"] == 100)


@pytest.mark.slow
class TestSpillThroughOutages:
    def test_spills_after_spill_after_seconds_of_failure(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """Below the watermark, records go to disk once Redis has failed for spill_after seconds."""
        handler = make_handler(url=own_server.url, key=key, spill_dir=tmp_path, spill_after=0.3)
        logger.addHandler(handler)
        spill_while_down(own_server, handler, logger)
        own_server.start()
        assert handler.flush(20) is True
        client = redis.Redis.from_url(own_server.url)
        assert [int(document["message"]) for document in read_stream(client, key)] == list(range(100))
        client.close()

    def test_killed_process_is_replayed_by_the_next(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler
    ) -> None:
        """A process killed with records on disk: the next handler on that key and directory replays them."""
        down = EmbeddedRedis()  # never started: nothing listens there
        first = start_spilling_process(down.url, key, tmp_path, 1000, "kill")
        out, err = first.communicate(timeout=60)
        assert first.returncode == -9, err
        assert out.split() == ["1000"]
        handler = make_handler(url=own_server.url, key=key, spill_dir=tmp_path)  # never logs anything itself
        wait_until(lambda: handler.stats()["recovered"] == 1000, timeout=20)
        client = redis.Redis.from_url(own_server.url)
        assert [document["message"] for document in read_stream(client, key)] == [f"first {n}" for n in range(1000)]
        client.close()
        assert list(tmp_path.iterdir()) == []

    def test_exit_with_redis_down_leaves_records_for_the_next_process(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """A process that exits while Redis is down keeps its records on disk (not dropped) for the next one."""
        down = EmbeddedRedis()
        started = time.monotonic()
        first = start_spilling_process(down.url, key, tmp_path, 500, "return")
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert time.monotonic() - started < 1 + 10  # close_timeout, plus start-up and the spill wait
        assert "500 records" in err
        assert "stay in" in err
        assert "Traceback" not in err
        handler = make_handler(url=own_server.url, key=key, spill_dir=tmp_path)
        logger.addHandler(handler)
        logger.info("second process")
        assert handler.flush(20) is True
        wait_until(lambda: handler.stats()["recovered"] == 500)
        client = redis.Redis.from_url(own_server.url)
        messages = [document["message"] for document in read_stream(client, key)]
        client.close()
        assert messages == [f"first {n}" for n in range(500)] + ["second process"]

    def test_two_live_processes_share_a_spill_directory(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str
    ) -> None:
        """Two processes spilling the same key into one directory at once: each replays its own, once."""
        own_server.kill()
        processes = [
            start_spilling_process(own_server.url, key, tmp_path, 2000, "wait", name=name) for name in ("a", "b")
        ]
        spilled = [process.stdout.readline().split() if process.stdout else [] for process in processes]
        assert spilled == [["2000"], ["2000"]]
        own_server.start()
        results = [process.communicate("go\n", timeout=60) for process in processes]
        assert [out.split() for out, _ in results] == [["True", "0"]] * 2, results
        client = redis.Redis.from_url(own_server.url)
        documents = read_stream(client, key)
        client.close()
        assert len({document["id"] for document in documents}) == len(documents) == 4000
        for name in ("a", "b"):
            own = [document["message"] for document in documents if document["message"].startswith(name)]
            assert own == [f"{name} {n}" for n in range(2000)]

    def test_forked_child_leaves_the_parents_segments_alone(
        self, tmp_path: Path, own_server: EmbeddedRedis, key: str, make_handler: MakeHandler, logger: logging.Logger
    ) -> None:
        """A child forked while the parent has records on disk neither replays nor unlocks them."""
        handler = make_handler(url=own_server.url, key=key, spill_dir=tmp_path, spill_after=0)
        logger.addHandler(handler)
        spill_while_down(own_server, handler, logger)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
            pid = os.fork()
        if pid == 0:  # the child: its handler starts empty; it ends without touching the parent's files
            os._exit(0 if handler.stats()["buffered"] == 0 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert adopt_in_another_process(tmp_path, key) == 0
        own_server.start()
        assert handler.flush(20) is True
        client = redis.Redis.from_url(own_server.url)
        assert [int(document["message"]) for document in read_stream(client, key)] == list(range(100))
        client.close()

    def test_disk_refusal_keeps_records_in_memory(
        self,
        tmp_path: Path,
        own_server: EmbeddedRedis,
        key: str,
        make_handler: MakeHandler,
        logger: logging.Logger,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """When the disk refuses a spill, the records stay in memory (nothing dropped), and it is reported once."""
        spill_dir = tmp_path / "spill"
        handler = make_handler(url=own_server.url, key=key, spill_dir=spill_dir, spill_after=0)
        logger.addHandler(handler)
        spill_dir.rmdir()
        spill_dir.write_text("a file where the directory was")  # every segment create now fails (even as root)
        own_server.kill()
        for number in range(100):
            logger.info("early %d", number)
        wait_until(lambda: "spilling pauses" in capsys.readouterr().err)
        for number in range(100):
            logger.info("kept %d", number)
        stats = handler.stats()
        assert (stats["buffered"], stats["dropped"], stats["spilled"]) == (200, 0, 0)
        own_server.start()
        assert handler.flush(20) is True
        client = redis.Redis.from_url(own_server.url)
        messages = [document["message"] for document in read_stream(client, key)]
        client.close()
        assert messages == [f"early {n}" for n in range(100)] + [f"kept {n}" for n in range(100)]
        stats = handler.stats()
        assert (stats["written"], stats["dropped"], stats["spilled"]) == (200, 0, 0)
