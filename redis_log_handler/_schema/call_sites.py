"""A stdlib record's document encoded from its call site's parts, each encoded once, and the parts that change.

Most of a schema-1 document is the same for every record from one call site
in one process: logger, level, source, module, function, line, file, process,
host and the static fields. For each call site (up to ``_MAX_CALL_SITES`` of
them; the table is emptied when full) the whole document is encoded once, by
the same encoder as every other document, with markers in place of the five
values that change from record to record (time, message, thread, thread name,
id); the encoded bytes are cut at the markers. A record's document is then
those parts joined with its own five values, encoded alone (the thread's number
and name once per thread, in a table of the same size), and framed as a RESP
bulk string in the same join (its length is the parts' known sizes plus the
values')::

    {"@timestamp":"<time>","@version":"1",...,"message":<message>,"source":...,
    "thread":<thread>,"thread_name":<thread name>,"host":...,"id":"<id>",
    "exception":null,"stack":null,"extra":{}<static fields>}

The bytes are the ones the whole encoder writes, framed (a test compares them
across records, back-ends and settings). Only the common case takes this way:
a record without exception, stack, extra fields or trace context, in schema 1,
whose message and thread name are text and that fits ``max_document_bytes``;
:meth:`CallSiteEncoder.frame` returns None for every other one, and the caller
builds and encodes the whole document.

The record is read from its ``__dict__`` by three ``itemgetter`` calls, which
also prove that every attribute a plain record of this Python has is there:
then the number of keys alone tells whether there are extra fields (only a
record with more keys is compared key by key; a formatter's ``message`` and
``asctime`` are not extra). A record missing one of them from its dict (deleted,
or a subclass's property) goes the whole way.
"""

from __future__ import annotations

import logging
from operator import itemgetter
from typing import Any, NamedTuple

from redis_log_handler._shared.json_codec import dumps
from redis_log_handler._shared.resp import BULK_HEADER

from .document import RECORD_ATTRIBUTES, dates, new_document, record_ids
from .encoding import DocumentEncoder
from .trace import current_trace

__all__ = ["CallSiteEncoder"]

_MAX_CALL_SITES = 4096
# Stand-ins for the values that change: none can appear in an encoded document otherwise (a control
# character in a string is always escaped, so the escaped form only comes from these).
_TIME, _MESSAGE, _THREAD, _THREAD_NAME, _ID = (f"\x00{name}\x00" for name in "TMHNI")
_MARKERS = [dumps(marker) for marker in (_TIME, _MESSAGE, _THREAD, _THREAD_NAME, _ID)]
_THREE_DIGITS = [b"%03d" % number for number in range(1000)]  # milliseconds, and microseconds within one

# What makes a call site, read from the record's __dict__ in this order (``_learn`` unpacks it); the values
# that change from record to record or send it the whole way; and the rest of the attributes every record
# of this Python has. A record holding all of them and no more keys than that has no extra fields.
_SITE_ATTRIBUTES = (
    "name", "levelname", "levelno", "module", "funcName", "lineno", "pathname", "process", "processName",
)  # fmt: skip
_CHANGING_ATTRIBUTES = ("thread", "threadName", "created", "msecs", "exc_info", "stack_info")
_STANDARD_ATTRIBUTES = tuple(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_STANDARD_COUNT = len(_STANDARD_ATTRIBUTES)
_SITE = itemgetter(*_SITE_ATTRIBUTES)
_CHANGING = itemgetter(*_CHANGING_ATTRIBUTES)
_OTHERS = itemgetter(*(name for name in _STANDARD_ATTRIBUTES if name not in _SITE_ATTRIBUTES + _CHANGING_ATTRIBUTES))

CallSite = tuple[Any, ...]


class Parts(NamedTuple):
    """A call site's encoded document cut at the values that change, with the bytes around them."""

    before_time: bytes  # the frame's document starts here: '{"@timestamp":"'
    before_message: bytes  # 'Z","@version":"1",...,"message":'
    before_thread: bytes
    before_thread_name: bytes  # ',"thread_name":', the same at every call site
    before_id: bytes  # ...,"id":"'
    after_id: bytes  # '","exception":null,...}' and the frame's CRLF
    size: int  # of the document without the values (the producer id and its "-" in, before_thread_name out)


class CallSiteEncoder:
    """Frames the common stdlib record from its call site's parts; None where the whole document is needed."""

    __slots__ = ("_encoder", "_max_bytes", "_parts", "_threads", "enabled")

    def __init__(self, encoder: DocumentEncoder, max_bytes: int, schema: str) -> None:
        self._encoder = encoder
        self._max_bytes = max_bytes
        self._parts: dict[CallSite, Parts] = {}
        # (thread, thread name) -> '<number>,"thread_name":<name as JSON>', what follows '"thread":'
        self._threads: dict[tuple[int, str], bytes] = {}
        self.enabled = schema == "v1"

    def frame(self, record: logging.LogRecord, message: str) -> bytes | None:
        """*record*'s document (its message formatted as *message*), framed; None if it needs the whole one."""
        if not self.enabled:
            return None
        attributes = record.__dict__
        try:  # C calls where reading each attribute would take a bytecode or two
            site = _SITE(attributes)
            thread, thread_name, created, msecs, exc_info, stack_info = _CHANGING(attributes)
            _OTHERS(attributes)  # every standard attribute is there: counting the keys finds any extra one
        except KeyError:
            return None  # not in the record's own dict (deleted, or a subclass's property): the whole encoder
        if len(attributes) != _STANDARD_COUNT and not attributes.keys() <= RECORD_ATTRIBUTES:
            return None  # extra fields (a formatter's "message" and "asctime" are not)
        if type(message) is not str:
            return None
        if exc_info or stack_info is not None or type(thread) is not int or type(thread_name) is not str:
            return None
        if current_trace is not None and current_trace() is not None:
            return None
        parts = self._parts.get(site) or self._learn(site)
        if parts is None:
            return None
        before_time, before_message, before_thread, before_thread_name, before_id, after_id, static_size = parts
        second = int(created)
        try:
            message_json = dumps(message)
            # iso_timestamp's rule with the record's own milliseconds: they win over rounding, and the
            # microseconds within them are the rounded ones, or their last where rounding crossed upwards.
            milliseconds = _THREE_DIGITS[int(msecs)]
            micros = round((created - second) * 1_000_000)
            microseconds = _THREE_DIGITS[micros % 1000 if micros // 1000 == msecs else 999]
            thread_fields = self._threads.get((thread, thread_name)) or self._thread_fields(
                thread, thread_name, before_thread_name
            )
        except Exception:
            return None  # a lone surrogate (the whole encoder repairs it), or milliseconds out of range
        if msecs < 0:
            return None
        cached_second, _, date = dates.current  # "YYYY-MM-DDTHH:MM:SS."
        if cached_second != second:
            _, _, date = dates.format(second)
        size = static_size + len(date) + len(message_json) + len(thread_fields)
        if size + 20 > self._max_bytes:
            return None  # it may not fit once the sequence number is in: the whole encoder cuts it
        number = b"%d" % record_ids.next()
        return b"".join(
            (
                BULK_HEADER % (size + len(number)), before_time, date, milliseconds, microseconds,
                before_message, message_json, before_thread, thread_fields, before_id,
                record_ids.producer_bytes, b"-", number, after_id,
            )
        )  # fmt: skip

    def _thread_fields(self, thread: int, thread_name: str, before_thread_name: bytes) -> bytes:
        """The thread's number and name as they sit in a document; raises on a lone surrogate in the name."""
        fields = b"%d%s%s" % (thread, before_thread_name, dumps(thread_name))
        if len(self._threads) >= _MAX_CALL_SITES:
            self._threads.clear()
        self._threads[(thread, thread_name)] = fields
        return fields

    def _learn(self, site: CallSite) -> Parts | None:
        """Encode the call site's document with markers and cut it at them; None if it cannot be done."""
        name, levelname, levelno, module, function, line, file, process, process_name = site
        thread: Any = _THREAD  # a stand-in for the number, which takes its place
        document = new_document(
            _TIME, levelname, levelno, name, _MESSAGE, "stdlib", module, function, line, file, process,
            process_name, thread, _THREAD_NAME, None, None, {}, record_id=_ID,
        )  # fmt: skip
        try:
            encoded = self._encoder.encode(document)
        except Exception:
            return None
        if b'"truncated":true' in encoded:
            return None  # the static parts alone are too large: every record is cut, by the whole encoder
        pieces: list[bytes] = []
        for marker in _MARKERS:
            before, found, encoded = encoded.partition(marker)
            if not found or marker in encoded:
                return None  # a static value held a marker's text: not this way
            pieces.append(before)
        pieces.append(encoded)
        # The time and the id are written inside the marker's quotes; the others bring their own. The
        # time's date ends with its ".", the milliseconds and microseconds follow, then its "Z".
        before_time, before_message, before_thread, before_thread_name, before_id, after_id = pieces
        # The thread's fields (``_thread_fields``) bring ',"thread_name":' with them.
        size = sum(len(piece) for piece in pieces) - len(before_thread_name)
        size += len('"Z"') + len('""') + 6 + len(record_ids.producer_bytes) + 1
        parts = Parts(
            before_time + b'"',
            b'Z"' + before_message,
            before_thread,
            before_thread_name,
            before_id + b'"',
            b'"' + after_id + b"\r\n",
            size,
        )
        if len(self._parts) >= _MAX_CALL_SITES:
            self._parts.clear()
        self._parts[site] = parts
        return parts
