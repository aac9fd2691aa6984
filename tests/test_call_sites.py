"""The call-site encoder writes the very bytes the whole encoder writes, or leaves the record to it.

Each test encodes the same record both ways, with the record id held fixed (each way would otherwise
take the next one), with the stdlib's ``json`` and with ``orjson`` (in the ``test`` extra).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_log_handler import RedisHandler
from redis_log_handler._schema import call_sites as _call_sites
from redis_log_handler._schema import document as _document
from redis_log_handler._schema.call_sites import CallSiteEncoder
from redis_log_handler._schema.document import SCHEMA_FIELDS, stdlib_document
from redis_log_handler._schema.encoding import DocumentEncoder
from redis_log_handler._shared.resp import frame, unframe

_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # lone surrogates included
_CLEAN_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_FIELDS = st.dictionaries(
    st.text(min_size=1, max_size=6).filter(lambda name: name not in SCHEMA_FIELDS),
    st.text(max_size=10) | st.integers(min_value=-(2**63), max_value=2**63) | st.none(),
    max_size=3,
)
_LEVELS = st.sampled_from([logging.DEBUG, logging.INFO, 25, logging.WARNING, logging.ERROR, logging.CRITICAL])


@pytest.fixture
def fixed_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every document gets the same sequence number, whichever way it is encoded."""
    monkeypatch.setattr(_document.record_ids, "next", lambda: 7)


def make_record(
    name: str, level: int, message: str, thread_name: str = "MainThread", line: int = 12, **extra: Any
) -> logging.LogRecord:
    record = logging.LogRecord(name, level, "/srv/app/orders.py", line, message, None, None, "serve")
    record.threadName = thread_name
    record.__dict__.update(extra)
    return record


def both_ways(
    record: logging.LogRecord, fields: dict[str, Any] | None = None, max_bytes: int = 262_144, schema: str = "v1"
) -> tuple[bytes | None, bytes]:
    """(the call-site encoder's frame or None, the whole encoder's bytes framed) for *record*."""
    encoder = DocumentEncoder(fields or {}, max_bytes, schema)
    sites = CallSiteEncoder(encoder, max_bytes, schema)
    message = record.getMessage()
    return sites.frame(record, message), frame(encoder.encode(stdlib_document(record, message)))


@pytest.mark.usefixtures("fixed_id")
class TestSameBytes:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(name=_ANY_TEXT.filter(bool), level=_LEVELS, message=_ANY_TEXT, thread_name=_ANY_TEXT, fields=_FIELDS)
    def test_any_text_either_way_the_same_bytes(
        self, json_backend: str, name: str, level: int, message: str, thread_name: str, fields: dict[str, Any]
    ) -> None:
        """Any logger name, level, message, thread name and static fields: the same bytes, or the whole way."""
        fast, whole = both_ways(make_record(name, level, message, thread_name), fields)
        assert fast is None or fast == whole

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(name=_CLEAN_TEXT.filter(bool), level=_LEVELS, message=_CLEAN_TEXT, thread_name=_CLEAN_TEXT, fields=_FIELDS)
    def test_the_common_case_takes_the_call_site_way(
        self, json_backend: str, name: str, level: int, message: str, thread_name: str, fields: dict[str, Any]
    ) -> None:
        """Text without lone surrogates (quotes, control characters, any script) goes the call-site way."""
        fast, whole = both_ways(make_record(name, level, message, thread_name), fields)
        assert fast == whole

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(created=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
    def test_any_time(self, json_backend: str, created: float) -> None:
        """Any time to 2100, with the milliseconds logging derives from it (they win over rounding)."""
        record = make_record("app", logging.INFO, "served")
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        fast, whole = both_ways(record)
        assert fast == whole

    def test_the_milliseconds_win_over_rounding(self, json_backend: str) -> None:
        """A time whose microseconds round up into the next millisecond keeps the record's milliseconds, at
        their last microsecond (the nearest to the time, and never before the record logged just before)."""
        record = make_record("app", logging.INFO, "served")
        record.created, record.msecs = 1_700_000_000.7339997, 733.0
        fast, whole = both_ways(record)
        assert fast == whole
        assert b"2023-11-14T22:13:20.733999Z" in whole

    def test_a_formatted_record(self, json_backend: str) -> None:
        """The attributes a Formatter adds ("message", "asctime") are not extra fields: the call-site way."""
        record = make_record("app", logging.INFO, "served")
        logging.Formatter("%(asctime)s %(message)s").format(record)
        fast, whole = both_ways(record)
        assert fast == whole

    def test_a_known_call_site_gives_each_record_its_own_values(self, json_backend: str) -> None:
        """The second record of a call site uses the parts learned from the first, with its own values."""
        encoder = DocumentEncoder({"service": "api"}, 262_144)
        sites = CallSiteEncoder(encoder, 262_144, "v1")
        for number, thread_name in enumerate(["MainThread", "worker-1", 'a "quoted"\nname']):
            record = make_record("app", logging.INFO, f"request {number} served", thread_name)
            record.thread = 1000 + number
            record.created += number * 1.5
            whole = encoder.encode(stdlib_document(record, f"request {number} served"))
            assert sites.frame(record, record.getMessage()) == frame(whole)

    def test_the_table_of_call_sites_is_bounded(self, json_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """More call sites (and threads) than the tables hold: they start over, and every record encodes the same."""
        monkeypatch.setattr(_call_sites, "_MAX_CALL_SITES", 8)
        encoder = DocumentEncoder({}, 262_144)
        sites = CallSiteEncoder(encoder, 262_144, "v1")
        for line in range(50):
            record = make_record("app", logging.INFO, "served", line=line)
            record.thread, record.threadName = 1000 + line, f"worker-{line}"
            assert sites.frame(record, "served") == frame(encoder.encode(stdlib_document(record, "served")))
            assert len(sites._parts) <= 8
            assert len(sites._threads) <= 8


@pytest.mark.usefixtures("fixed_id")
class TestTheWholeWay:
    """The records the call-site encoder leaves to the whole encoder."""

    def test_an_exception(self, json_backend: str) -> None:
        record = make_record("app", logging.ERROR, "failed")
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
        assert both_ways(record)[0] is None

    def test_a_stack(self, json_backend: str) -> None:
        record = make_record("app", logging.INFO, "here")
        record.stack_info = "Stack (most recent call last):\n  ..."
        assert both_ways(record)[0] is None

    def test_extra_fields(self, json_backend: str) -> None:
        assert both_ways(make_record("app", logging.INFO, "paid", order_id=42))[0] is None

    def test_an_extra_field_in_place_of_a_deleted_attribute(self, json_backend: str) -> None:
        """As many keys as a plain record, one of them an extra field: the whole way, which keeps the extra."""
        record = make_record("app", logging.INFO, "paid", order_id=42)
        del record.relativeCreated
        fast, whole = both_ways(record)
        assert fast is None
        assert b'"extra":{"order_id":42}' in whole

    def test_an_attribute_the_class_provides(self, json_backend: str) -> None:
        """A record subclass whose attribute is a property (not in the record's dict): the whole way."""

        class Renamed(logging.LogRecord):
            @property
            def funcName(self) -> str:  # stdlib's name
                return "renamed"

            @funcName.setter
            def funcName(self, _value: str) -> None:
                pass

        record = Renamed("app", logging.INFO, "/srv/app/orders.py", 12, "paid", None, None, "serve")
        fast, whole = both_ways(record)
        assert fast is None
        assert b'"function":"renamed"' in whole

    def test_ecs(self, json_backend: str) -> None:
        assert both_ways(make_record("app", logging.INFO, "paid"), schema="ecs")[0] is None

    def test_a_document_too_large(self, json_backend: str) -> None:
        """A message past max_document_bytes: the whole encoder cuts it and marks it truncated."""
        fast, whole = both_ways(make_record("app", logging.INFO, "x" * 5000), max_bytes=1024)
        assert fast is None
        assert b'"truncated":true' in whole

    def test_a_lone_surrogate_in_the_message(self, json_backend: str) -> None:
        fast, whole = both_ways(make_record("app", logging.INFO, "bad \udc80 byte"))
        assert fast is None
        assert b"\\udc80" in whole

    def test_a_thread_without_a_number(self, json_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """logging.logThreads = False leaves the thread fields None."""
        record = make_record("app", logging.INFO, "served")
        record.thread = record.threadName = None
        assert both_ways(record)[0] is None

    def test_a_current_span(self, json_backend: str) -> None:
        """With a valid OpenTelemetry span current, the trace fields come with the whole document."""
        trace = pytest.importorskip("opentelemetry.trace")
        context = trace.SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=trace.TraceFlags(1))
        with trace.use_span(trace.NonRecordingSpan(context)):
            fast, whole = both_ways(make_record("app", logging.INFO, "paid"))
        assert fast is None
        assert b'"span_id":"0000000000000002"' in whole

    def test_a_context_without_a_span(self, json_backend: str) -> None:
        """An OpenTelemetry context holding something else (baggage): the call-site way, no trace fields."""
        baggage = pytest.importorskip("opentelemetry.baggage")
        context = pytest.importorskip("opentelemetry.context")
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            fast, whole = both_ways(make_record("app", logging.INFO, "paid"))
        finally:
            context.detach(token)
        assert fast == whole
        assert b"trace_id" not in whole


@pytest.mark.usefixtures("fixed_id")
def test_the_handler_buffers_the_same_frames(json_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """RedisHandler's frames for plain records, exceptions and extras are the whole encoder's, framed."""
    handler = RedisHandler(url="redis://127.0.0.1:1/0", fields={"service": "api"})
    framed: list[bytes] = []
    monkeypatch.setattr(handler._shipper.intake, "put", framed.append)
    encoder = DocumentEncoder({"service": "api"}, 262_144)
    records = [make_record("app", logging.INFO, "plain"), make_record("app", logging.INFO, "extra", user="ann")]
    try:
        raise KeyError("missing")
    except KeyError:
        records.append(make_record("app", logging.ERROR, "failed"))
        records[-1].exc_info = sys.exc_info()
    for record in records:
        handler.handle(record)
    handler.close()
    expected = [encoder.encode(stdlib_document(record, record.getMessage())) for record in records]
    assert [unframe(frame_) for frame_ in framed] == expected
    assert framed == [frame(data) for data in expected]
