"""The consume command: records logged in one process are written by another as the first would have."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import wait_until

pytestmark = pytest.mark.slow

FORMAT = "%(asctime)s %(levelname)s %(name)s %(funcName)s:%(lineno)d %(message)s"
CONSUME = [sys.executable, "-m", "redis_log_handler", "consume"]

PRODUCER = textwrap.dedent(
    """
    import logging, sys
    from redis_log_handler import RedisHandler

    url, key, local_file, fmt = sys.argv[1:5]
    local = logging.FileHandler(local_file)
    local.setFormatter(logging.Formatter(fmt))
    redis_handler = RedisHandler(url=url, key=key)
    shop = logging.getLogger("shop")
    shop.setLevel(logging.DEBUG)
    for handler in (local, redis_handler):
        shop.addHandler(handler)
    log = logging.getLogger("shop.orders")

    def place_order(number):
        log.info("order %d placed, total %.2f EUR", number, number * 1.5, extra={"order": number})

    def refund():
        try:
            {}["missing"]
        except KeyError:
            log.exception("refund failed for %s", "order-7")

    for number in range(500):
        place_order(number)
    refund()
    log.warning("%s", "100% of stock sold", stack_info=True)
    shop.debug("multi\\nline message")
    redis_handler.close()
    local.close()
    """
)


def dict_config(output: Path) -> dict[str, object]:
    """A dictConfig sending every record to *output* in FORMAT."""
    return {
        "version": 1,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(output), "formatter": "plain"}},
        "root": {"level": "DEBUG", "handlers": ["file"]},
    }


def line_count(path: Path) -> int:
    """The number of complete lines in *path* (0 if it does not exist yet)."""
    return path.read_text().count("\n") if path.exists() else 0


def test_the_round_trip_writes_the_producers_lines(
    redis_server: EmbeddedRedis, client: redis.Redis, key: str, tmp_path: Path
) -> None:
    """A record logged in one process and re-emitted by consume gives the producer's line, tracebacks included."""
    local, consumed, config = tmp_path / "local.log", tmp_path / "consumed.log", tmp_path / "logging.json"
    subprocess.run([sys.executable, "-c", PRODUCER, redis_server.url, key, str(local), FORMAT], check=True, timeout=60)
    config.write_text(json.dumps(dict_config(consumed)))
    consumer = subprocess.Popen(
        [*CONSUME, "--config", str(config), "--url", redis_server.url, "--key", key],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        expected = local.read_text()
        wait_until(lambda: line_count(consumed) >= expected.count("\n"), timeout=30)
        wait_until(lambda: client.xpending(key, "redis-log-handler")["pending"] == 0)
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, stderr = consumer.communicate(timeout=10)
    assert consumer.returncode == 0, stderr
    assert consumed.read_text() == expected
    assert "Traceback (most recent call last)" in expected
    assert "Stack (most recent call last)" in expected
    assert "stopped (read 503, handled 503, acked 503" in stderr


@pytest.mark.parametrize("suffix", [".yaml", ".ini"])
def test_yaml_and_ini_configurations(
    suffix: str, redis_server: EmbeddedRedis, client: redis.Redis, key: str, tmp_path: Path
) -> None:
    """A YAML file goes through dictConfig, an .ini file through fileConfig."""
    consumed = tmp_path / "consumed.log"
    config = tmp_path / f"logging{suffix}"
    if suffix == ".yaml":
        import yaml  # noqa: PLC0415 - in the test extras

        config.write_text(yaml.safe_dump(dict_config(consumed)))
    else:
        config.write_text(
            textwrap.dedent(
                f"""
                [loggers]
                keys=root
                [handlers]
                keys=file
                [formatters]
                keys=plain
                [logger_root]
                level=DEBUG
                handlers=file
                [handler_file]
                class=FileHandler
                formatter=plain
                args=({str(consumed)!r},)
                [formatter_plain]
                format=%(levelname)s %(name)s %(message)s
                """
            )
        )
    client.xadd(key, {"data": json.dumps({"logger": "svc", "level": "ERROR", "levelno": 40, "message": "hello"})})
    consumer = subprocess.Popen([*CONSUME, "--config", str(config), "--url", redis_server.url, "--key", key])
    try:
        wait_until(lambda: line_count(consumed) == 1)
    finally:
        consumer.send_signal(signal.SIGINT)
        consumer.wait(timeout=10)
    assert consumer.returncode == 0
    assert consumed.read_text().endswith(" ERROR svc None:0 hello\n" if suffix == ".yaml" else "ERROR svc hello\n")


GATED_HANDLER = textwrap.dedent(
    """
    import logging, pathlib, time

    class Gated(logging.Handler):
        # Handles record N once the gate file holds more than N characters, then notes N in the handled file.
        def __init__(self, gate, handled):
            super().__init__()
            self.gate, self.handled = pathlib.Path(gate), pathlib.Path(handled)

        def emit(self, record):
            while record.number >= len(self.gate.read_text()):
                time.sleep(0.01)
            with self.handled.open("a") as out:
                out.write(f"{record.number}\\n")
    """
)


def test_without_a_configuration_every_record_goes_to_stdout(
    redis_server: EmbeddedRedis, client: redis.Redis, key: str
) -> None:
    """consume without --config writes each record to stdout, one line: time, level, logger, message."""
    client.xadd(key, {"data": json.dumps({"logger": "svc.orders", "level": "ERROR", "levelno": 40, "message": "hi"})})
    consumer = subprocess.Popen(
        [*CONSUME, "--url", redis_server.url, "--key", key], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert consumer.stdout is not None
        line = consumer.stdout.readline()
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, stderr = consumer.communicate(timeout=10)
    assert consumer.returncode == 0, stderr
    assert line.rstrip().endswith(" ERROR    svc.orders: hi"), line


def test_a_list_key_is_consumed_as_a_list_without_mode(
    redis_server: EmbeddedRedis, client: redis.Redis, key: str, tmp_path: Path
) -> None:
    """consume on a key holding a list (the README's list-mode key) pops it as a list without --mode."""
    consumed, config = tmp_path / "consumed.log", tmp_path / "logging.json"
    config.write_text(json.dumps(dict_config(consumed)))
    document = {"logger": "svc", "level": "ERROR", "levelno": 40, "message": "hello"}
    client.rpush(key, *[json.dumps({**document, "message": f"hello {number}"}) for number in range(3)])
    consumer = subprocess.Popen(
        [*CONSUME, "--config", str(config), "--url", redis_server.url, "--key", key], stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: line_count(consumed) == 3)
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, stderr = consumer.communicate(timeout=10)
    assert consumer.returncode == 0, stderr
    assert f"reading list {key!r}" in stderr
    assert client.exists(key) == 0


def test_sigterm_finishes_the_batch_in_hand_and_reads_no_more(
    redis_server: EmbeddedRedis, client: redis.Redis, key: str, tmp_path: Path
) -> None:
    """On SIGTERM, consume handles and acknowledges the rest of its batch, then stops without reading another."""
    gate, handled, config = tmp_path / "gate", tmp_path / "handled", tmp_path / "logging.json"
    (tmp_path / "gated.py").write_text(GATED_HANDLER)
    gate.write_text("xx")
    handler = {"()": "gated.Gated", "gate": str(gate), "handled": str(handled)}
    config.write_text(json.dumps({"version": 1, "handlers": {"gated": handler}, "root": {"handlers": ["gated"]}}))

    def add(numbers: range) -> None:
        for number in numbers:
            client.xadd(key, {"data": json.dumps({"logger": "svc", "message": "m", "extra": {"number": number}})})

    add(range(5))
    consumer = subprocess.Popen(
        [*CONSUME, "--config", str(config), "--url", redis_server.url, "--key", key],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: line_count(handled) == 2)  # the third record holds the batch of five
        consumer.send_signal(signal.SIGTERM)
        add(range(5, 8))
        gate.write_text("x" * 100)
        _, stderr = consumer.communicate(timeout=15)
    finally:
        consumer.kill()
    assert consumer.returncode == 0, stderr
    assert handled.read_text().split() == ["0", "1", "2", "3", "4"]
    assert client.xpending(key, "redis-log-handler")["pending"] == 0
    (group,) = client.xinfo_groups(key)
    assert group["lag"] == 3  # written after SIGTERM: never read, waiting for the next consumer


def test_errors_are_one_line(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """A bad configuration file is status 2, an unreachable server status 1, each one line."""
    bad = tmp_path / "logging.json"
    bad.write_text(json.dumps({"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}))
    for config, url, status, text in [
        (bad, redis_server.url, 2, "error: cannot configure logging from"),
        (tmp_path / "logging.txt", redis_server.url, 2, "error: --config must name a .json, .yaml, .yml, .ini"),
        (tmp_path / "missing.json", redis_server.url, 2, "error: cannot configure logging from"),
        (None, f"redis://127.0.0.1:{_free_port()}/0", 1, "cannot reach Redis at redis://127.0.0.1:"),
    ]:
        path = config
        if path is None:
            path = tmp_path / "good.json"
            path.write_text(json.dumps({"version": 1}))
        result = subprocess.run(
            [*CONSUME, "--config", str(path), "--url", url], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == status, result.stderr
        (line,) = result.stderr.splitlines()
        assert text in line
