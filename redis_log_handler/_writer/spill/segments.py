"""One spill segment file: its format, and creating, appending to, reading, committing and deleting it.

A segment is named ``<key hash>.<sequence>.<pid>.<random>.seg`` (the sequence,
20 digits, orders a key's segments oldest first) and holds::

    header   16 bytes: magic b"RLHSPIL2", then the committed offset (u64, little-endian):
             the file offset up to which its records are in Redis, updated in place
    records  one after another: <length:u32><crc32:u32><document>

Each record's payload is one encoded document, the UTF-8 JSON that becomes a
stream entry's ``data`` field or a list element (not the RESP frame the writer
sends: it is framed again when replayed).

The process writing a segment holds an exclusive ``flock`` on it until the
segment is replayed and deleted, or until the process ends. A segment is
created under a temporary name (``.tmp``) and renamed only once locked, so no
other process can adopt it before its writer holds it (and another process
removes a temporary file only once it is old: see ``spill``). Segments are not fsynced:
they survive the process, not necessarily a power cut.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["HEADER_SIZE", "RECORD_OVERHEAD", "Segment", "lock_unheld", "remove"]

_MAGIC = b"RLHSPIL2"
_HEADER = struct.Struct("<8sQ")  # magic, committed offset
_RECORD = struct.Struct("<II")  # payload length, crc32 of the payload
HEADER_SIZE = _HEADER.size
RECORD_OVERHEAD = _RECORD.size


@dataclass(eq=False)
class Segment:
    """An open, locked segment file."""

    path: str
    fd: int
    size: int  # bytes in the file
    sequence: int
    own: bool  # written by this process (False: adopted from a process that is gone)
    records: int = 0  # records appended by this process (adopted segments: unknown until loaded)
    loaded: deque[bytes] = field(default_factory=deque)  # read but not yet committed
    offsets: deque[int] = field(default_factory=deque)  # file offset after each loaded record

    @classmethod
    def create(cls, directory: str, prefix: str, sequence: int) -> Segment:
        """Create, lock and name a new empty segment (raises OSError)."""
        name = f"{prefix}.{sequence:020d}.{os.getpid()}.{secrets.token_hex(4)}"
        temporary = os.path.join(directory, name + ".tmp")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, _HEADER.pack(_MAGIC, _HEADER.size))
            path = os.path.join(directory, name + ".seg")
            os.rename(temporary, path)
        except OSError:
            os.close(fd)
            remove(temporary)
            raise
        return cls(path, fd, _HEADER.size, sequence, own=True)

    @classmethod
    def adopted(cls, path: str, fd: int) -> Segment:
        """A segment of a process that is gone, locked by this one (see :func:`lock_unheld`)."""
        sequence = int(os.path.basename(path).split(".")[1]) if path.count(".") >= 4 else 0
        return cls(path, fd, os.fstat(fd).st_size, sequence, own=False)

    def append(self, documents: Sequence[bytes]) -> int:
        """Write *documents* at the end of the file; returns the bytes written (raises OSError)."""
        parts = []
        for document in documents:
            parts.append(_RECORD.pack(len(document), zlib.crc32(document)))
            parts.append(document)
        view = memoryview(b"".join(parts))
        written = len(view)
        position = self.size
        try:
            while view:
                done = os.pwrite(self.fd, view, position)
                view, position = view[done:], position + done
        except OSError:
            # Cut a partial write off, so its whole records are not replayed while the caller keeps them.
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:  # then the torn tail is skipped on replay (a complete record before it may repeat)
                pass
            raise
        self.size += written
        self.records += len(documents)
        return written

    def load(self) -> bool:
        """Read the records not yet committed into ``loaded``; returns False if the segment is damaged.

        A torn tail (a crash mid-write) or a checksum mismatch ends the segment
        there: the records before it are loaded, the rest is skipped.
        """
        try:
            data = _read_all(self.fd)
        except OSError:
            data = b""
        magic, offset = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (b"", 0)
        if magic != _MAGIC or not _HEADER.size <= offset <= len(data):
            return False
        end = len(data)
        while offset < end:
            if end - offset < _RECORD.size:
                return False
            length, checksum = _RECORD.unpack_from(data, offset)
            start = offset + _RECORD.size
            payload = data[start : start + length]
            if len(payload) != length or zlib.crc32(payload) != checksum:
                return False
            offset = start + length
            self.loaded.append(payload)
            self.offsets.append(offset)
        return True

    def commit(self, count: int) -> None:
        """Forget the *count* oldest loaded records and record in the header how far the segment is replayed."""
        offset = self.offsets[count - 1]
        for _ in range(count):
            self.loaded.popleft()
            self.offsets.popleft()
        if self.loaded:
            # In the segment itself, so a process that adopts it after a crash skips these.
            try:
                os.pwrite(self.fd, struct.pack("<Q", offset), 8)
            except OSError:  # only a hint for after a crash: without it the records are replayed again
                pass

    def delete(self) -> None:
        """Remove the file and close it. Unlinked while still locked: a process waiting for the lock finds it gone."""
        remove(self.path)
        os.close(self.fd)


def lock_unheld(path: str) -> int | None:
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


def _read_all(fd: int) -> bytes:
    parts = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def remove(path: str) -> None:
    """Unlink *path*; gone already, or a directory turned read-only, is not an error here."""
    try:
        os.unlink(path)
    except OSError:
        pass
