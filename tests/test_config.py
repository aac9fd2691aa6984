"""Configuration: validation errors name the parameter, and configuring needs no Redis."""

from __future__ import annotations

import dataclasses
import gc
import inspect
import logging
import logging.config
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler._reader.settings import _CHECKS as _READER_CHECKS
from redis_log_handler._reader.settings import ReaderSettings
from redis_log_handler._shared.checks import DEFAULT_URL
from redis_log_handler._shared.fork import callbacks_registered
from redis_log_handler._writer.settings import _CHECKS, WriterSettings
from redis_log_handler.testing import InMemoryTransport, _free_port


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "parameter"),
        [
            ({"mode": "kafka"}, "mode"),
            ({"overflow": "spill"}, "overflow"),
            ({"batch_size": 0}, "batch_size"),
            ({"batch_size": -5}, "batch_size"),
            ({"batch_size": 1.5}, "batch_size"),
            ({"buffer_size": 0}, "buffer_size"),
            ({"buffer_size": True}, "buffer_size"),
            ({"flush_interval": 0}, "flush_interval"),
            ({"flush_interval": float("nan")}, "flush_interval"),
            ({"close_timeout": -1}, "close_timeout"),
            ({"block_timeout": -0.1}, "block_timeout"),
            ({"maxlen": 0}, "maxlen"),
            ({"ttl": 0}, "ttl"),
            ({"ttl": 10, "mode": "pubsub"}, "ttl"),
            ({"maxlen": 10, "mode": "pubsub"}, "maxlen"),
            ({"key": ""}, "key"),
            ({"key": 5}, "key"),
            ({"max_document_bytes": 100}, "max_document_bytes"),
            ({"fields": ["service"]}, "fields"),
            ({"fields": {"message": "x"}}, "fields"),
            ({"fields": {"big": "x" * 100_000}}, "fields"),
            ({"client": "not callable"}, "client"),
            ({"transport": "memory"}, "transport"),
            ({"transport": InMemoryTransport(), "client": lambda: None}, "transport"),
            ({"url": "http://localhost:6379"}, "url"),
            ({"url": "redis://localhost:notaport/0"}, "url"),
            ({"url": "redis:///0"}, "url"),
            ({"url": "unix://"}, "url"),
            ({"url": ""}, "url"),
            ({"socket_timeout": 0}, "socket_timeout"),
            ({"spill_dir": 42}, "spill_dir"),
            ({"spill_dir": ""}, "spill_dir"),
            ({"spill_dir": "/proc/redis-log-handler-spill"}, "spill_dir"),
            ({"spill_max_bytes": 0}, "spill_max_bytes"),
            ({"spill_after": -1}, "spill_after"),
        ],
    )
    def test_bad_parameter_names_it(self, kwargs: dict[str, Any], parameter: str) -> None:
        """Each invalid parameter raises ValueError whose message starts with its name."""
        with pytest.raises(ValueError, match=rf"^{parameter}\b"):
            RedisHandler(**kwargs)

    def test_password_is_not_echoed(self) -> None:
        """A malformed URL's password never appears in the error."""
        with pytest.raises(ValueError, match="url") as caught:
            RedisHandler(url="redis://user:s3cret@host:99999/0")
        assert "s3cret" not in str(caught.value)

    def test_url_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """url=None takes $REDIS_URL, else the default."""
        monkeypatch.setenv("REDIS_URL", "redis://10.1.2.3:7000/2")
        assert RedisHandler().settings.url == "redis://10.1.2.3:7000/2"
        monkeypatch.delenv("REDIS_URL")
        assert RedisHandler().settings.url == DEFAULT_URL

    @pytest.mark.parametrize(
        "url", ["redis://localhost:6380/1", "rediss://u:p@example.com:6380/0", "unix:///tmp/r.sock?db=2"]
    )
    def test_accepted_urls(self, url: str) -> None:
        """redis://, rediss:// and unix:// URLs are accepted as redis-py parses them."""
        assert RedisHandler(url=url).settings.url == url

    def test_repr_hides_password(self) -> None:
        """repr() names mode, key and URL without the password."""
        text = repr(RedisHandler(url="redis://user:pw@localhost:6379/0", key="app"))
        assert "pw@" not in text
        assert "stream 'app'" in text


class TestOneListOfParameters:
    def test_signature_matches_the_settings(self) -> None:
        """RedisHandler's keyword arguments are WriterSettings' fields with the same defaults and order, plus level."""
        parameters = inspect.signature(RedisHandler.__init__).parameters
        handler_own = [(name, p.default) for name, p in parameters.items() if name not in ("self", "level")]
        settings = [(field.name, field.default) for field in dataclasses.fields(WriterSettings)]
        assert handler_own == settings
        assert parameters["level"].default == logging.NOTSET

    def test_every_parameter_is_checked_and_documented(self) -> None:
        """Each parameter has a check, and a row in the configuration reference."""
        reference = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
        assert set(_CHECKS) == set(WriterSettings.names())
        for name in [*WriterSettings.names(), "level"]:
            assert f"| `{name}` |" in reference, name


class TestTheReadersOneListOfParameters:
    def test_signature_matches_the_settings(self) -> None:
        """RedisLogConsumer's keyword arguments are ReaderSettings' fields with the same defaults and order."""
        parameters = inspect.signature(RedisLogConsumer.__init__).parameters
        consumer_own = [(name, p.default) for name, p in parameters.items() if name != "self"]
        assert consumer_own == [(field.name, field.default) for field in dataclasses.fields(ReaderSettings)]

    def test_every_parameter_is_checked_and_documented(self) -> None:
        """Each parameter has a check, and a row in the consumer page's table with its default."""
        reference = (Path(__file__).parent.parent / "docs" / "consumer.md").read_text()
        names = [field.name for field in dataclasses.fields(ReaderSettings)]
        assert list(_READER_CHECKS) == names
        for field in dataclasses.fields(ReaderSettings):
            if field.name in ("name", "dead_letter"):  # defaults computed from the host, pid and key
                assert f"| `{field.name}` |" in reference
            else:
                shown = f'"{field.default}"' if isinstance(field.default, str) else str(field.default)
                assert f"| `{field.name}` | `{shown.replace('_', '')}` |" in reference, field.name


class TestForkRegistry:
    def test_handlers_leave_no_fork_callbacks_behind(self) -> None:
        """1,000 handlers created and dropped leave the fork registry as it was (one os.register_at_fork hook)."""
        gc.collect()
        before = callbacks_registered()
        handlers = [RedisHandler() for _ in range(1000)]
        assert callbacks_registered() == before + 1000
        for handler in handlers:
            handler.close()
        del handlers, handler
        gc.collect()
        assert callbacks_registered() == before


class TestNoNetworkAtConfiguration:
    def test_constructor_starts_nothing(self) -> None:
        """Building a handler for an unreachable server neither fails nor starts a thread or a connection."""
        script = (
            "import threading, socket, redis_log_handler as r\n"
            "created = []\n"
            "real = socket.socket.connect\n"
            "socket.socket.connect = lambda self, *a: created.append(a) or real(self, *a)\n"
            f"h = r.RedisHandler(url='redis://127.0.0.1:{_free_port()}/0')\n"
            "print(len(threading.enumerate()), len(created))\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
        assert result.stdout.split() == ["1", "0"]

    def test_dict_config_while_redis_is_down(self) -> None:
        """dictConfig builds the handler from keyword arguments even when Redis is unreachable."""
        url = f"redis://127.0.0.1:{_free_port()}/0"
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "redis": {
                        "class": "redis_log_handler.RedisHandler",
                        "url": url,
                        "key": "app:logs",
                        "mode": "list",
                        "level": "INFO",
                        "fields": {"service": "api"},
                    }
                },
                "loggers": {"tests.dictconfig.down": {"handlers": ["redis"], "propagate": False}},
            }
        )
        handler = logging.getLogger("tests.dictconfig.down").handlers[0]
        assert isinstance(handler, RedisHandler)
        assert handler.level == logging.INFO
        assert handler.settings.mode == "list"
        assert handler.settings.fields == {"service": "api"}
        handler.close()

    def test_dict_config_rejects_bad_value(self) -> None:
        """A bad parameter in dictConfig surfaces as a configuration error naming it."""
        with pytest.raises(ValueError, match="Unable to configure handler 'r'") as caught:
            logging.config.dictConfig(
                {"version": 1, "handlers": {"r": {"class": "redis_log_handler.RedisHandler", "batch_size": 0}}}
            )
        assert str(caught.value.__cause__).startswith("batch_size must be a positive integer")
