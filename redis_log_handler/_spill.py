"""Disk spill: append-only segment files that hold records while Redis cannot take them.

Only the consumer (on the runtime loop) calls into a :class:`Spill`; application
threads never touch the disk.

A segment is ``<key hash>.<sequence>.<pid>.<random>.seg`` in the spill
directory. It starts with a 16-byte header (magic, then the byte offset up to
which its records have been written to Redis, updated in place after every
round trip), followed by records, each ``<length:u32><crc32:u32><payload>``.
The process that writes a segment holds an exclusive ``flock`` on it until the
segment is replayed and deleted, or until the process ends. A process that
finds an unlocked segment of its key at start-up adopts it: the writer is gone,
and its records are replayed first. A segment is created under a temporary
name and renamed only once locked, so no other process can adopt it early.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Spill"]

_MAGIC = b"RLHSPIL1"
_HEADER = struct.Struct("<8sQ")  # magic, committed offset
_RECORD = struct.Struct("<II")  # payload length, crc32 of the payload
_MIN_SEGMENT_BYTES = 64 * 1024
_MAX_SEGMENT_BYTES = 8 * 1024 * 1024


@dataclass(eq=False)
class _Segment:
    path: str
    fd: int
    size: int  # bytes in the file
    own: bool  # written by this process (False: adopted from a process that is gone)
    records: int = 0  # records appended by this process (adopted segments: unknown until loaded)
    loaded: deque[bytes] = field(default_factory=deque)  # read but not yet committed
    offsets: deque[int] = field(default_factory=deque)  # file offset after each loaded record


class Spill:
    """The spill segments of one handler (one key and mode) in one directory."""

    def __init__(self, directory: str, key: str, mode: str, max_bytes: int) -> None:
        self._directory = directory
        self._prefix = hashlib.sha256(f"{mode}\0{key}".encode()).hexdigest()[:16]
        self._max_bytes = max_bytes
        self._segment_bytes = max(_MIN_SEGMENT_BYTES, min(_MAX_SEGMENT_BYTES, max_bytes // 8))
        self._sealed: deque[_Segment] = deque()  # oldest first; the head is the one being replayed
        self._tail: _Segment | None = None  # the segment appended to
        self._sequence = 0
        self.bytes = 0  # on disk in the segments held
        self.pending_own = 0  # records of this process on disk, not yet written to Redis
        self.spilled = 0
        self.replayed = 0
        self.recovered = 0  # replayed records that an earlier process had spilled
        self.corrupt = 0  # segments whose tail could not be read (skipped)
        self.unreadable_own = 0  # records this process spilled and could not read back

    # ------------------------------------------------------------ writing

    def append(self, records: Sequence[bytes]) -> int:
        """Append *records* in order; returns how many fit within max_bytes (the rest are not written).

        Raises OSError if the disk refuses; the segment written to is then
        sealed, so a torn record can only ever be the end of a segment.
        """
        written = 0
        chunk: list[bytes] = []
        chunk_bytes = 0
        try:
            for record in records:
                size = _RECORD.size + len(record)
                if self.bytes + chunk_bytes + size > self._max_bytes:
                    break
                tail = self._tail
                if tail is None or (tail.size + chunk_bytes + size > self._segment_bytes and (tail.records or chunk)):
                    if chunk:
                        written += self._write(chunk, chunk_bytes)
                        chunk, chunk_bytes = [], 0
                    self._seal_tail()
                    self._tail = self._create()
                chunk.append(_RECORD.pack(len(record), zlib.crc32(record)))
                chunk.append(record)
                chunk_bytes += size
            if chunk:
                written += self._write(chunk, chunk_bytes)
        except OSError:
            self._seal_tail()
            raise
        return written

    def _write(self, chunk: list[bytes], chunk_bytes: int) -> int:
        tail = self._tail
        assert tail is not None
        data = b"".join(chunk)
        view = memoryview(data)
        position = tail.size
        while view:
            done = os.pwrite(tail.fd, view, position)
            view, position = view[done:], position + done
        count = len(chunk) // 2
        tail.size += chunk_bytes
        tail.records += count
        self.bytes += chunk_bytes
        self.pending_own += count
        self.spilled += count
        return count

    def _create(self) -> _Segment:
        self._sequence = max(self._sequence + 1, time.time_ns())
        name = f"{self._prefix}.{self._sequence:020d}.{os.getpid()}.{secrets.token_hex(4)}"
        temporary = os.path.join(self._directory, name + ".tmp")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, _HEADER.pack(_MAGIC, _HEADER.size))
            path = os.path.join(self._directory, name + ".seg")
            os.rename(temporary, path)
        except OSError:
            os.close(fd)
            _remove(temporary)
            raise
        self.bytes += _HEADER.size
        return _Segment(path, fd, _HEADER.size, own=True)

    def _seal_tail(self) -> None:
        if self._tail is not None:
            self._sealed.append(self._tail)
            self._tail = None

    # ------------------------------------------------------------ reading

    @property
    def has_records(self) -> bool:
        """Whether anything is left to replay."""
        return bool(self._sealed) or (self._tail is not None and self._tail.records > 0)

    def peek(self, limit: int) -> tuple[list[bytes], bool]:
        """Up to *limit* of the oldest records (from one segment), and whether this process spilled them."""
        while True:
            if not self._sealed:
                if self._tail is None or not self._tail.records:
                    return [], True
                self._seal_tail()
            head = self._sealed[0]
            if not head.loaded:
                self._load(head)
            if head.loaded:
                return list(_take(head.loaded, limit)), head.own
            self._delete(self._sealed.popleft())  # empty, or nothing readable left

    def commit(self, count: int) -> None:
        """Forget the *count* oldest records (returned by peek): they are in Redis or dropped for good."""
        head = self._sealed[0]
        offset = head.offsets[count - 1]
        for _ in range(count):
            head.loaded.popleft()
            head.offsets.popleft()
        self.replayed += count
        if head.own:
            self.pending_own -= count
        else:
            self.recovered += count
        if head.loaded:
            # Recorded in the segment itself, so a process that adopts it after a crash skips these.
            try:
                os.pwrite(head.fd, struct.pack("<Q", offset), 8)
            except OSError:  # only a hint for after a crash: without it the records are replayed again
                pass
        else:
            self._delete(self._sealed.popleft())

    def _load(self, segment: _Segment) -> None:
        try:
            data = _read_all(segment.fd)
        except OSError:
            data = b""
        magic, offset = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (b"", 0)
        if magic != _MAGIC or not _HEADER.size <= offset <= len(data):
            self.corrupt += 1
            offset = end = 0
        else:
            end = len(data)
        while offset < end:
            if end - offset < _RECORD.size:
                self.corrupt += 1
                break
            length, checksum = _RECORD.unpack_from(data, offset)
            start = offset + _RECORD.size
            payload = data[start : start + length]
            if len(payload) != length or zlib.crc32(payload) != checksum:
                self.corrupt += 1
                break
            offset = start + length
            segment.loaded.append(payload)
            segment.offsets.append(offset)
        if segment.own:
            # Records this process spilled but cannot read back are lost for good.
            unreadable = segment.records - len(segment.loaded)
            self.pending_own -= unreadable
            self.unreadable_own += unreadable

    def _delete(self, segment: _Segment) -> None:
        # Unlinked while still locked: a process waiting for the lock finds the file gone.
        _remove(segment.path)
        os.close(segment.fd)
        self.bytes -= segment.size

    # ----------------------------------------------------------- adoption

    def _names_on_disk(self) -> list[str]:
        """This key's files in the directory, oldest first (names start with the creation sequence)."""
        return sorted(name for name in os.listdir(self._directory) if name.startswith(self._prefix + "."))

    def has_segments_on_disk(self) -> bool:
        """Whether the directory holds any file of this key: perhaps one an earlier process left to adopt."""
        try:
            return bool(self._names_on_disk())
        except OSError:  # reported when the consumer tries to adopt
            return False

    def adopt(self) -> int:
        """Take over the segments of this key that no live process holds; returns how many."""
        adopted = 0
        for name in self._names_on_disk():
            path = os.path.join(self._directory, name)
            fd = _lock_unheld(path)
            if fd is None:
                continue
            if name.endswith(".tmp"):  # its creator died before renaming it: it holds no records
                _remove(path)
                os.close(fd)
                continue
            size = os.fstat(fd).st_size
            self._sealed.append(_Segment(path, fd, size, own=False))
            self.bytes += size
            adopted += 1
        return adopted

    # ------------------------------------------------------------- ending

    def close(self) -> None:
        """Close every segment's descriptor; what was not replayed stays on disk for the next process.

        Never unlocks explicitly: in a forked child, whose descriptors share
        the parent's locks, closing them leaves the locks with the parent.
        """
        self._seal_tail()
        for segment in self._sealed:
            os.close(segment.fd)
        self._sealed.clear()


def _lock_unheld(path: str) -> int | None:
    """Open and lock *path* if no live process holds it; None if one does or it is gone."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # replayed and deleted by its owner meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        deleted = os.fstat(fd).st_nlink == 0  # unlinked between our open and our lock
    except OSError:  # held by a live process
        deleted = True
    if deleted:
        os.close(fd)
        return None
    return fd


def _take(records: Iterable[bytes], limit: int) -> Iterable[bytes]:
    for index, record in enumerate(records):
        if index == limit:
            return
        yield record


def _read_all(fd: int) -> bytes:
    parts = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already, or the directory turned read-only: nothing more to do
        pass
