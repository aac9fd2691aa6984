"""StructlogProcessor: a RedisHandler as a structlog processor (structlog is imported only by the application)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ._document import normalize_level
from ._handler import RedisHandler
from ._sources import event_level, structlog_document

__all__ = ["StructlogProcessor"]


class StructlogProcessor:
    """A structlog processor that tees each event into a :class:`RedisHandler` and returns it unchanged.

    Put it anywhere in the chain (typically after ``add_log_level`` and
    ``TimeStamper`` and before the renderer); the chain goes on to render to
    the console as before. *level* skips events below it; ``drop=True`` ends
    the chain here (raises ``structlog.DropEvent``) once the event is buffered.
    """

    __slots__ = ("_drop_event", "_handler", "_levelno")

    def __init__(self, handler: RedisHandler, *, level: int | str = logging.NOTSET, drop: bool = False) -> None:
        if not isinstance(handler, RedisHandler):
            raise ValueError(f"handler must be a RedisHandler, got {handler!r}")
        self._handler = handler
        self._levelno = normalize_level(level)[1]
        if isinstance(level, str) and self._levelno == 0 and level.upper() != "NOTSET":
            raise ValueError(f"level must be a logging level name or number, got {level!r}")
        self._drop_event: type[BaseException] | None = None
        if drop:
            from structlog import DropEvent  # noqa: PLC0415 - structlog is an optional extra

            self._drop_event = DropEvent

    def __call__(self, logger: Any, method_name: str, event_dict: Mapping[str, Any]) -> Any:
        """Buffer the event (never raises, never waits on Redis) and hand it on untouched."""
        if not self._levelno or event_level(event_dict, method_name)[1] >= self._levelno:
            logger_name = getattr(logger, "name", None)  # a stdlib logger's name; other loggers have none
            self._handler.submit(
                "structlog",
                os.getpid(),
                structlog_document,
                event_dict,
                method_name,
                None,
                logger_name if isinstance(logger_name, str) else None,
            )
        if self._drop_event is not None:
            raise self._drop_event
        return event_dict
