"""The ECS preset: Elastic Common Schema documents, and every reader reading them as schema 1."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
import redis

from redis_log_handler import RedisHandler, RedisLogConsumer, to_log_record
from redis_log_handler._cli.main import main
from redis_log_handler._schema.document import stdlib_document
from redis_log_handler._schema.ecs import from_ecs, to_ecs
from redis_log_handler.testing import EmbeddedRedis

from .helpers import wait_until
from .readers import Keep, collecting, produced, running

FORMAT = "%(asctime)s %(levelname)s %(name)s %(funcName)s:%(lineno)d %(message)s"


def test_the_ecs_layout(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: Callable[..., RedisHandler],
    logger: logging.Logger,
) -> None:
    """schema="ecs": dotted top-level keys, nested objects, extras in their place, ECS-named static fields placed
    and the rest labelled, what ECS lacks under the namespace."""
    fields = {"service.name": "api", "service.environment": "prod", "team": "billing"}
    handler = make_handler(url=redis_server.url, key=key, schema="ecs", fields=fields)
    logger.addHandler(handler)
    try:
        {}["missing"]
    except KeyError:
        extra = {"order": 7, "user.id": "u-5", "host": "clash"}
        logger.error("refund failed for %s", "A-7", exc_info=True, extra=extra)
    assert handler.flush(10)
    ((_, entry),) = client.xrange(key)
    document = json.loads(entry[b"data"])
    assert list(document)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert (document["log.level"], document["message"]) == ("error", "refund failed for A-7")
    assert document["log"]["logger"] == logger.name
    assert document["log"]["original"] == "refund failed for A-7"
    assert document["log"]["origin"]["file"]["name"] == "test_ecs.py"
    assert document["process"]["thread"]["name"] == "MainThread"
    assert document["host"]["hostname"]
    assert document["error"]["type"] == "KeyError"
    assert document["error"]["stack_trace"].startswith('  File "')  # the frames, as format_tb writes them
    assert document["event"]["id"].count("-") == 1
    assert "dataset" not in document["event"]  # ECS does not name the logger there
    assert document["service"] == {"name": "api", "environment": "prod"}
    assert document["labels"] == {"team": "billing"}
    assert (document["order"], document["user"]) == (7, {"id": "u-5"})
    assert document["redis_log_bridge"]["extra"] == {"host": "clash"}  # kept: host is an ECS object
    assert document["redis_log_bridge"]["source"] == "stdlib"
    assert from_ecs(document)["extra"] == extra


def test_from_ecs_gives_back_the_schema_1_document(logger: logging.Logger) -> None:
    """Every field survives the trip to ECS and back (static fields return to the top level)."""
    keep = Keep()
    logger.addHandler(keep)
    try:
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("chained") from exc
    except ValueError:
        logger.exception("chained")  # the frames alone cannot rebuild its traceback: kept whole
    logger.removeHandler(keep)
    for record in [*keep.records, *produced(logger, 1)]:
        document = stdlib_document(record, record.getMessage())
        fields = {"service": "api", "service.name": "api", "cloud.region": "eu-1"}
        assert from_ecs(json.loads(json.dumps(to_ecs(document, fields)))) == {**document, **fields}


def test_a_rebuilt_ecs_record_formats_as_the_original(logger: logging.Logger) -> None:
    """to_log_record reads ECS documents: the line is the producer's own, traceback and stack included."""
    formatter = logging.Formatter(FORMAT)
    for record in produced(logger, 1):
        ecs = to_ecs(stdlib_document(record, record.getMessage()), {})
        rebuilt = to_log_record(json.loads(json.dumps(ecs)))
        assert formatter.format(rebuilt) == formatter.format(record)


def test_tail_and_the_consumer_read_ecs(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: Callable[..., RedisHandler],
    logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """tail shows ECS records like schema-1 ones, and filters them by level and logger alike."""
    handler = make_handler(url=redis_server.url, key=key, schema="ecs")
    logger.addHandler(handler)
    logger.info("quiet")
    logger.error("loud")
    assert handler.flush(10)
    assert main(["tail", "--url", redis_server.url, "--key", key, "--level", "error", "--logger", logger.name]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith(f" ERROR    stdlib    {logger.name}: loud")


def test_the_consumer_re_emits_ecs_records(
    redis_server: EmbeddedRedis,
    client: redis.Redis,
    key: str,
    make_handler: Callable[..., RedisHandler],
    logger: logging.Logger,
) -> None:
    """RedisLogConsumer.run() rebuilds ECS documents into records with the producer's fields and extras."""
    handler = make_handler(url=redis_server.url, key=key, schema="ecs")
    logger.addHandler(handler)
    logger.warning("stock low", extra={"sku": "A-1"})
    assert handler.flush(10)
    logger.removeHandler(handler)
    consumer = RedisLogConsumer(url=redis_server.url, key=key, block=0.1, claim_idle=1.0)
    with collecting(logger.name) as collector, running(consumer):
        wait_until(lambda: len(collector.records) == 1)
    (record,) = collector.records
    assert (record.levelname, record.getMessage(), record.funcName) == (
        "WARNING",
        "stock low",
        "test_the_consumer_re_emits_ecs_records",
    )
    assert (record.sku, record.source) == ("A-1", "stdlib")  # type: ignore[attr-defined]


def test_bad_schema() -> None:
    """schema must be v1 or ecs."""
    with pytest.raises(ValueError, match=r"^schema must be one of v1, ecs"):
        RedisHandler(schema="xml")
