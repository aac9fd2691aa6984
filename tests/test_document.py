"""The schema-1 document: fields, JSON safety and truncation (no Redis needed)."""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from redis_log_handler._schema.document import iso_timestamp, new_document, stdlib_document
from redis_log_handler._schema.encoding import DocumentEncoder
from redis_log_handler._shared import json_codec as _json

SCHEMA_KEYS = {
    "@timestamp",
    "@version",
    "level",
    "levelno",
    "logger",
    "message",
    "source",
    "module",
    "function",
    "line",
    "file",
    "process",
    "process_name",
    "thread",
    "thread_name",
    "host",
    "id",
    "exception",
    "stack",
    "extra",
}


def make_record(msg: object = "hello %s", args: Any = ("world",), **extra: Any) -> logging.LogRecord:
    """Build a record the way Logger.makeRecord does, with *extra* attributes."""
    record = logging.LogRecord("app.module", logging.WARNING, __file__, 42, msg, args, None, func="handler")
    record.__dict__.update(extra)
    return record


def encode(record: logging.LogRecord, max_bytes: int = 262_144, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encode *record* and parse the bytes back, as a consumer would."""
    encoder = DocumentEncoder(fields or {}, max_bytes)
    data = encoder.encode(stdlib_document(record, record.getMessage()))
    assert isinstance(data, bytes)
    assert len(data) <= max_bytes
    parsed: dict[str, Any] = json.loads(data.decode("utf-8"))
    return parsed


class TestSchema:
    def test_has_every_schema_field(self) -> None:
        """A plain record produces exactly the documented top-level fields."""
        document = encode(make_record())
        assert set(document) == SCHEMA_KEYS
        assert document["@version"] == "1"
        assert document["source"] == "stdlib"
        assert document["message"] == "hello world"
        assert document["level"] == "WARNING"
        assert document["levelno"] == logging.WARNING
        assert document["logger"] == "app.module"
        assert document["function"] == "handler"
        assert document["line"] == 42
        assert document["file"] == __file__
        assert document["exception"] is None
        assert document["extra"] == {}

    def test_static_fields_at_top_level(self) -> None:
        """Static fields are added at the top level of every document."""
        document = encode(make_record(), fields={"service": "api", "env": "prod"})
        assert document["service"] == "api"
        assert document["env"] == "prod"

    def test_timestamp_is_iso_utc_with_microseconds(self) -> None:
        """@timestamp is ISO-8601 UTC with six fractional digits and Z: record.created, with the record's msecs.

        Where rounding ``created`` to the microsecond would cross a millisecond (about one record in two
        thousand), the record's own milliseconds win (see ``test_msecs_win_over_rounding``), so the two
        can differ by up to a millisecond.
        """
        record = make_record()
        document = encode(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", document["@timestamp"])
        parsed = datetime.strptime(document["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert document["@timestamp"][20:23] == f"{int(record.msecs):03d}"
        assert abs(parsed.timestamp() - record.created) < 1e-3

    @pytest.mark.parametrize(
        ("created", "expected"),
        [
            (0.0, "1970-01-01T00:00:00.000000Z"),
            (1_700_000_000.9999996, "2023-11-14T22:13:21.000000Z"),
            (1_700_000_000.25, "2023-11-14T22:13:20.250000Z"),
        ],
    )
    def test_timestamp_rounding(self, created: float, expected: str) -> None:
        """Microseconds round correctly, carrying into the next second."""
        assert iso_timestamp(created) == expected

    def test_msecs_win_over_rounding(self) -> None:
        """Where rounding to the microsecond crosses a millisecond, the record's msecs (what asctime shows) win,
        at the microsecond of that millisecond nearest the time: its last."""
        created = 1_700_000_000.7339997  # rounds to .734000; logging's msecs is 733
        assert iso_timestamp(created) == "2023-11-14T22:13:20.734000Z"
        assert iso_timestamp(created, 733.0) == "2023-11-14T22:13:20.733999Z"
        assert iso_timestamp(1_700_000_000.9999997, 999.0) == "2023-11-14T22:13:20.999999Z"  # not the next second
        assert iso_timestamp(1_700_000_000.25, 250.0) == "2023-11-14T22:13:20.250000Z"

    @example(1_700_000_000.7515, 0.0004997)  # the second rounds up to .752000, its msecs is 751
    @given(st.floats(1_600_000_000, 2_000_000_000), st.floats(0, 0.01))
    def test_records_logged_one_after_the_other_never_go_back_in_time(self, created: float, later: float) -> None:
        """Two records, the second logged *later* seconds after the first (msecs as logging computes them): the
        second's timestamp is not earlier (a reader merging shards, or the web page, orders by it)."""
        second = created + later
        first_msecs, second_msecs = ((t - int(t)) * 1000 // 1 for t in (created, second))
        assert iso_timestamp(created, first_msecs) <= iso_timestamp(second, second_msecs)

    def test_ids_are_unique_and_ordered(self) -> None:
        """Record ids share this process's producer id and carry an increasing sequence number."""
        fields = dict.fromkeys(("logger", "module", "function", "line", "file", "process", "process_name"), None)
        fields |= dict.fromkeys(("thread", "thread_name", "exception", "stack"), None)
        make = lambda: new_document(  # noqa: E731
            timestamp="", level="INFO", levelno=20, message="", source="stdlib", extra={}, **fields
        )["id"]
        first, second = make(), make()
        producer, number = first.rsplit("-", 1)
        assert second == f"{producer}-{int(number) + 1}"

    def test_extra_values(self) -> None:
        """Values passed as extra= arrive in "extra", JSON-safe."""
        document = encode(make_record(user="ann", n=3, ratio=0.5, ok=True, tags=["a", "b"], nested={"k": (1, 2)}))
        assert document["extra"] == {
            "user": "ann",
            "n": 3,
            "ratio": 0.5,
            "ok": True,
            "tags": ["a", "b"],
            "nested": {"k": [1, 2]},
        }


_WITHOUT_ORJSON = """
import json, sys
sys.modules["orjson"] = None  # as if the fast extra were not installed
from redis_log_handler._shared import json_codec as backend
sample = json.loads(sys.argv[1])
sample["big"] = 2**70
sample["nan"] = float("nan")
sys.stdout.buffer.write(backend.BACKEND.encode() + b" " + backend.dumps(backend.json_safe(sample)))
"""


class TestWithoutOrjson:
    def test_the_stdlib_backend_writes_the_same_document(self, tmp_path: Path) -> None:
        """A process without orjson falls back to the stdlib's json and writes the document byte for byte as orjson
        does (integers past 64 bits as text, NaN as a string, non-ASCII as is)."""
        sample = {"message": "café ✓ \u2028", "n": [1, -2.5, True, None], "nested": {"k": "v"}}
        child = subprocess.run(
            [sys.executable, "-c", _WITHOUT_ORJSON, json.dumps(sample)],
            cwd=tmp_path,
            capture_output=True,
            check=True,
            timeout=60,
        )
        backend, document = child.stdout.split(b" ", 1)
        assert backend == b"json"
        assert _json.BACKEND == "orjson"
        assert document == _json.dumps(_json.json_safe({**sample, "big": 2**70, "nan": float("nan")}))


class TestColourVariants:
    def test_uvicorns_color_message_is_left_out(self) -> None:
        """uvicorn's extra ``color_message`` (the format string again, with terminal colours) repeats the message:
        it is not in the document; an extra with colours that is not the message is kept, escapes and all."""
        record = make_record(
            color_message="Started server process [\x1b[36m%d\x1b[0m]", banner="\x1b[1mready\x1b[0m", n=1
        )
        record.msg, record.args = "Started server process [%d]", (4121,)
        document = stdlib_document(record, record.getMessage())
        assert document["message"] == "Started server process [4121]"
        assert document["extra"] == {"banner": "\x1b[1mready\x1b[0m", "n": 1}


class TestJsonSafety:
    def test_unserialisable_values_become_strings(self) -> None:
        """Objects, sets, bytes and non-finite floats become strings; the record is kept."""

        class Opaque:
            def __repr__(self) -> str:
                return "<Opaque>"

        document = encode(
            make_record(obj=Opaque(), items={3}, raw=b"\xff\xfeab", nan=math.nan, inf=-math.inf, key_obj={1: "x"})
        )
        extra = document["extra"]
        assert extra["obj"] == "<Opaque>"
        assert extra["items"] == "{3}"
        assert extra["raw"] == "\\xff\\xfeab"
        assert extra["nan"] == "NaN"
        assert extra["inf"] == "-Infinity"
        assert extra["key_obj"] == {"1": "x"}

    def test_recursive_structure(self) -> None:
        """A self-referencing structure is cut at a fixed depth instead of recursing forever."""
        loop: list[Any] = []
        loop.append(loop)
        document = encode(make_record(loop=loop))
        depth, value = 0, document["extra"]["loop"]
        while isinstance(value, list):
            depth, value = depth + 1, value[0]
        assert isinstance(value, str)
        assert depth < 20

    def test_str_that_raises(self) -> None:
        """A value whose __str__ raises is still represented."""

        class Broken:
            def __str__(self) -> str:
                raise RuntimeError("no")

        document = encode(make_record(thing=Broken()))
        assert "Broken object at" in document["extra"]["thing"]

    def test_lone_surrogates_never_crash(self) -> None:
        """Lone surrogates in the message and in extras become visible escapes in valid UTF-8."""
        record = make_record("bad \udcff text %s", ("\ud800",), name_with_surrogate="x\udc80")
        document = encode(record)
        assert document["message"] == "bad \\udcff text \\ud800"
        assert document["extra"]["name_with_surrogate"] == "x\\udc80"

    def test_control_characters_round_trip(self) -> None:
        """ANSI escapes and newlines stay in the message field, escaped by JSON."""
        text = "line1\r\nline2 \x1b[31mred\x1b[0m \x9b"
        assert encode(make_record(text, None))["message"] == text


class TestExceptions:
    def test_exception_object(self) -> None:
        """exc_info becomes an object with type, message and traceback text."""
        try:
            raise ValueError("bad value")
        except ValueError:
            record = make_record()
            record.exc_info = sys.exc_info()
        exception = encode(record)["exception"]
        assert exception["type"] == "ValueError"
        assert exception["message"] == "bad value"
        assert exception["traceback"].startswith("Traceback (most recent call last):")
        assert exception["traceback"].endswith("ValueError: bad value")

    def test_exception_type_is_qualified(self) -> None:
        """Exception types outside builtins carry their module."""
        try:
            json.loads("{")
        except json.JSONDecodeError:
            record = make_record()
            record.exc_info = sys.exc_info()
        assert encode(record)["exception"]["type"] == "json.decoder.JSONDecodeError"


class TestTruncation:
    def test_huge_message_is_cut_and_marked(self) -> None:
        """A document over max_document_bytes is cut to fit and marked truncated."""
        document = encode(make_record("x" * 50_000, None), max_bytes=4096)
        assert document["truncated"] is True
        assert document["message"].endswith("…[truncated]")
        assert document["message"].startswith("xxxx")

    def test_huge_traceback_and_extra_are_cut(self) -> None:
        """Traceback and extras shrink too, keeping every extra key."""
        try:
            raise RuntimeError("y" * 20_000)
        except RuntimeError:
            record = make_record("short", None, big="z" * 30_000, small=1)
            record.exc_info = sys.exc_info()
        document = encode(record, max_bytes=8192)
        assert document["truncated"] is True
        assert set(document["extra"]) == {"big", "small"}
        assert document["extra"]["small"] == 1
        assert document["message"] == "short"

    def test_multibyte_text_is_cut_on_a_character_boundary(self) -> None:
        """Cutting never splits a UTF-8 sequence."""
        document = encode(make_record("é" * 10_000, None), max_bytes=2048)
        assert set(document["message"].removesuffix("…[truncated]")) == {"é"}

    def test_small_document_is_not_marked(self) -> None:
        """Documents within the limit carry no truncated field."""
        assert "truncated" not in encode(make_record(), max_bytes=2048)
