"""The disk spill of one handler: a queue of segment files, oldest first, that memory overflows into.

Records enter at the tail (:meth:`Spill.store`, from the intake: application
threads in a burst, the drain task during an outage) and leave from the head
(:meth:`Spill.peek` then :meth:`Spill.commit`, the drain task only, once they are
in Redis). A round trip that was already out of memory when it failed goes in
front of everything else (:meth:`Spill.prepend`): it is older. Segments that
earlier processes left behind are adopted at start-up and come first of all.
The file format is in ``segments``.

A lock guards the queue and the counters; a segment at the head is read
outside it, so a thread appending at the tail never waits for a replay.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections import deque

from redis_log_handler._shared.diagnostics import describe, report
from redis_log_handler._shared.native import allocate_lock
from redis_log_handler._shared.resp import unframe
from redis_log_handler._writer.ledger import SpillCounts

from .segments import HEADER_SIZE, RECORD_OVERHEAD, Segment, lock_unheld, remove

__all__ = ["Spill"]

_MIN_SEGMENT_BYTES = 64 * 1024
_MAX_SEGMENT_BYTES = 8 * 1024 * 1024
PAUSE_AFTER_ERROR = 30.0  # seconds without spilling after the disk refused a write
# A segment is created under a temporary name, locked, then renamed, within microseconds: another
# process that finds one must not lock it meanwhile (the creator's lock would fail). Only one this old
# is known to be left by a creator that died.
_TMP_ABANDONED_AFTER = 60.0


class Spill:
    """The spill segments of one handler (one key and mode) in one directory, in one process."""

    def __init__(self, directory: str, key: str, mode: str, max_bytes: int) -> None:
        self.directory = directory
        self._prefix = hashlib.sha256(f"{mode}\0{key}".encode()).hexdigest()[:16]
        self._key = key
        self._max_bytes = max_bytes
        self._segment_bytes = max(_MIN_SEGMENT_BYTES, min(_MAX_SEGMENT_BYTES, max_bytes // 8))
        self._lock = allocate_lock()  # native: application threads and the runtime's thread both take it
        self._sealed: deque[Segment] = deque()  # oldest first; the head is the one being replayed
        self._tail: Segment | None = None  # the segment appended to
        self._sequence = 0
        self._paused_until = 0.0
        self.bytes = 0  # on disk in the segments held
        self.pending_own = 0  # records of this process on disk, not yet written to Redis
        self.spilled = 0
        self.replayed = 0
        self.recovered = 0  # replayed records that an earlier process had spilled
        self.corrupt = 0  # segments whose tail (or whole content) could not be read (skipped)
        self.unreadable_own = 0  # records this process spilled and could not read back

    # ------------------------------------------------------------ writing

    def store(self, frames: list[bytes]) -> int:
        """Append the documents in *frames* at the tail, in order; returns how many were stored.

        Stops at ``max_bytes``. If the disk refuses a write, what was written
        stays, the rest is not stored, and spilling pauses for
        ``PAUSE_AFTER_ERROR`` seconds (the caller keeps those records in memory).
        """
        if not frames or time.monotonic() < self._paused_until:
            return 0
        with self._lock:
            return self._store([unframe(framed) for framed in frames])

    def _store(self, documents: list[bytes]) -> int:
        stored = 0
        chunk: list[bytes] = []
        chunk_bytes = 0
        try:
            for document in documents:
                size = RECORD_OVERHEAD + len(document)
                tail = self._tail
                new_segment = tail is None or (
                    tail.size + chunk_bytes + size > self._segment_bytes and bool(tail.records or chunk)
                )
                # A new segment's header counts towards max_bytes too.
                if self.bytes + chunk_bytes + size + (HEADER_SIZE if new_segment else 0) > self._max_bytes:
                    break
                if new_segment:
                    if chunk:
                        stored += self._write(chunk)
                        chunk, chunk_bytes = [], 0
                    self._seal_tail()
                    self._tail = self._create(self._next_sequence())
                chunk.append(document)
                chunk_bytes += size
            if chunk:
                stored += self._write(chunk)
        except OSError as exc:
            self._refused(exc)
        return stored

    def _write(self, documents: list[bytes]) -> int:
        tail = self._tail
        assert tail is not None
        self.bytes += tail.append(documents)
        self.pending_own += len(documents)
        self.spilled += len(documents)
        return len(documents)

    def prepend(self, frames: list[bytes]) -> int:
        """Put *frames* in a new segment in front of all others (they are older); returns how many were stored.

        All or nothing: if they do not fit within ``max_bytes`` or the disk
        refuses, none is stored.
        """
        if not frames or time.monotonic() < self._paused_until:
            return 0
        documents = [unframe(framed) for framed in frames]
        with self._lock:  # logging threads may be storing at the same time
            if self.bytes + HEADER_SIZE + _size(documents) > self._max_bytes:
                return 0
            head = self._sealed[0] if self._sealed else self._tail
            sequence = head.sequence - 1 if head is not None else self._next_sequence()
            try:
                segment = Segment.create(self.directory, self._prefix, sequence)
            except OSError as exc:
                self._refused(exc)
                return 0
            try:
                segment.append(documents)
            except OSError as exc:
                segment.delete()
                self._refused(exc)
                return 0
            self._sealed.appendleft(segment)
            self.bytes += segment.size
            self.pending_own += len(documents)
            self.spilled += len(documents)
        return len(documents)

    def _create(self, sequence: int) -> Segment:
        segment = Segment.create(self.directory, self._prefix, sequence)
        self.bytes += HEADER_SIZE
        return segment

    def _next_sequence(self) -> int:
        self._sequence = max(self._sequence + 1, time.time_ns())
        return self._sequence

    def _seal_tail(self) -> None:
        if self._tail is not None:
            self._sealed.append(self._tail)
            self._tail = None

    def _refused(self, exc: OSError) -> None:
        # Whatever a failed write left on disk is a torn segment tail, skipped on replay.
        self._seal_tail()
        self._paused_until = time.monotonic() + PAUSE_AFTER_ERROR
        report(
            "spill-error",
            f"writing to the spill in {self.directory!r} for {self._key!r} failed ({describe(exc)}); "
            f"records stay in memory and spilling pauses for {PAUSE_AFTER_ERROR:g}s",
        )

    # ------------------------------------------------------------ reading

    def has_records(self) -> bool:
        """Whether anything is left to replay."""
        return bool(self._sealed) or (self._tail is not None and self._tail.records > 0)

    def pending(self) -> int:
        """Records of this process on disk, not yet written to Redis."""
        return self.pending_own

    def peek(self, limit: int) -> tuple[list[bytes], bool]:
        """Up to *limit* of the oldest documents (from one segment), and whether this process spilled them."""
        while True:
            with self._lock:
                if not self._sealed:
                    if self._tail is None or not self._tail.records:
                        return [], True
                    self._seal_tail()
                head = self._sealed[0]
            if not head.loaded:
                self._load(head)
            if head.loaded:
                return list(itertools.islice(head.loaded, limit)), head.own
            self._drop_head()  # empty, or nothing readable left

    def _load(self, segment: Segment) -> None:
        if not segment.load():
            self.corrupt += 1
        if segment.own:
            # Records this process spilled but cannot read back are lost for good.
            unreadable = max(0, segment.records - len(segment.loaded))
            with self._lock:
                self.pending_own -= unreadable
                self.unreadable_own += unreadable

    def commit(self, count: int) -> None:
        """Forget the *count* oldest documents (returned by peek): they are in Redis or dropped for good."""
        head = self._sealed[0]
        head.commit(count)
        with self._lock:
            self.replayed += count
            if head.own:
                self.pending_own -= count
            else:
                self.recovered += count
        if not head.loaded:
            self._drop_head()

    def _drop_head(self) -> None:
        with self._lock:
            head = self._sealed.popleft()
            self.bytes -= head.size
        head.delete()

    # ----------------------------------------------------------- adoption

    def _names_on_disk(self) -> list[str]:
        """This key's files in the directory, oldest first (names start with the creation sequence)."""
        return sorted(name for name in os.listdir(self.directory) if name.startswith(self._prefix + "."))

    def has_segments_on_disk(self) -> bool:
        """Whether the directory holds any file of this key: perhaps one an earlier process left to adopt."""
        try:
            return bool(self._names_on_disk())
        except OSError:  # reported when the drain task tries to adopt
            return False

    def adopt(self) -> int:
        """Take over the segments of this key that no live process holds, in front of this process's own."""
        adopted = []
        for name in self._names_on_disk():
            path = os.path.join(self.directory, name)
            if name.endswith(".tmp") and not _abandoned(path):
                continue  # being created: its creator locks and renames it in a moment (do not even lock it)
            fd = lock_unheld(path)
            if fd is None:
                continue
            if name.endswith(".tmp"):  # its creator died before renaming it: it holds no records
                remove(path)
                os.close(fd)
                continue
            adopted.append(Segment.adopted(path, fd))
        with self._lock:
            self._sealed.extendleft(reversed(adopted))
            self.bytes += sum(segment.size for segment in adopted)
        return len(adopted)

    # ------------------------------------------------------------- ending

    def counts(self) -> SpillCounts:
        """The spill's counters for stats()."""
        return SpillCounts(self.spilled, self.replayed, self.recovered, self.bytes, self.corrupt, self.unreadable_own)

    def close(self) -> None:
        """Close every segment's descriptor; what was not replayed stays on disk for the next process."""
        with self._lock:
            self._close_descriptors()

    def forget_inherited(self) -> None:
        """In a forked child: close the descriptors inherited from the parent, leaving its locks with it.

        Takes no lock (a parent's thread may have held it at the fork) and never
        unlocks: the child's descriptors share the parent's ``flock`` locks.
        """
        self._close_descriptors()

    def _close_descriptors(self) -> None:
        self._seal_tail()
        for segment in self._sealed:
            try:
                os.close(segment.fd)
            except OSError:  # closed already
                pass
        self._sealed.clear()


def _abandoned(path: str) -> bool:
    """Whether a temporary segment is old enough that its creator cannot still be renaming it."""
    try:
        return time.time() - os.stat(path).st_mtime > _TMP_ABANDONED_AFTER
    except OSError:  # renamed or removed meanwhile
        return False


def _size(documents: list[bytes]) -> int:
    return sum(RECORD_OVERHEAD + len(document) for document in documents)
