"""The Redis wire format (RESP) of what the writer sends: framed documents and the commands built from them.

Shared: the schema's call-site encoder frames the documents it builds itself.

A document is framed as a RESP bulk string on the application's thread, when
the record is buffered: the background thread then only joins bytes, which
keeps its share of the GIL small. The memory buffer holds frames; the disk
spill holds plain documents (see ``_writer.spill.spill``), framed again when replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["BULK_HEADER", "CommandPrefix", "command_prefix", "frame", "join_calls", "unframe"]

BULK_HEADER = b"$%d\r\n"
"""A bulk string's header, ``% length``; the string and ``\r\n`` follow (``_schema.call_sites`` frames with it)."""
_FRAME = BULK_HEADER + b"%s\r\n"


def frame(document: bytes) -> bytes:
    """Frame *document* as a RESP bulk string, ready to be joined into a command."""
    return _FRAME % (len(document), document)


def unframe(framed: bytes) -> bytes:
    """The document inside a frame made by :func:`frame`."""
    return framed[framed.index(b"\r\n") + 2 : -2]


class CommandPrefix(NamedTuple):
    """A command's leading arguments, framed once: how many there are, and their frames joined."""

    arguments: int
    framed: bytes


def command_prefix(arguments: Sequence[bytes]) -> CommandPrefix:
    """Frame the fixed leading arguments of a command (``EVAL <script> 1 <key> ...``) once, for many calls."""
    return CommandPrefix(len(arguments), b"".join(frame(argument) for argument in arguments))


def join_calls(prefix: CommandPrefix, batches: Iterable[Sequence[bytes]], after: bytes = b"") -> bytes:
    """One command per batch (the prefix, then the batch's frames as further arguments), joined into one write.

    *after*, complete commands already in wire form, follows each batch's command.
    """
    parts: list[bytes] = []
    for batch in batches:
        parts.append(b"*%d\r\n" % (prefix.arguments + len(batch)))
        parts.append(prefix.framed)
        parts.extend(batch)
        if after:
            parts.append(after)
    return b"".join(parts)
