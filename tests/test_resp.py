"""The writer's RESP framing is redis-py's: what it joins from pre-framed parts is the command redis-py packs."""

from __future__ import annotations

import redis.connection
from hypothesis import given
from hypothesis import strategies as st

from redis_log_handler._shared.resp import command_prefix, frame, join_calls, unframe

# redis-py splits a command name holding a space ("CONFIG GET") into words: the writer's names hold none.
_NAMES = st.sampled_from([b"EVAL", b"RPUSH", b"WAIT", b"PUBLISH"])


@given(
    name=_NAMES,
    arguments=st.lists(st.binary(max_size=40), max_size=5),
    batches=st.lists(st.lists(st.binary(max_size=7000), max_size=6), max_size=4),
)
def test_joined_calls_are_the_commands_redis_py_packs(
    name: bytes, arguments: list[bytes], batches: list[list[bytes]]
) -> None:
    """For any arguments, the writer's framing (a prefix framed once, documents framed on the caller's thread,
    joined per batch) is byte for byte what redis-py's own command packing sends for the same commands, and a
    frame gives back its document."""
    packer = redis.connection.Connection()
    prefix = [name, *arguments]
    ours = join_calls(command_prefix(prefix), [[frame(document) for document in batch] for batch in batches])
    theirs = b"".join(b"".join(packer.pack_command(*prefix, *batch)) for batch in batches)
    assert ours == theirs
    documents = [document for batch in batches for document in batch]
    assert [unframe(frame(document)) for document in documents] == documents
