"""StructlogProcessor: a RedisHandler as a structlog processor (structlog is imported only by the application)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

from redis_log_handler._schema.document import normalize_level
from redis_log_handler._schema.sources import event_level, structlog_document

from .handler import RedisHandler

__all__ = ["StructlogProcessor"]

_NOT_THE_CALLER = ("concurrent.futures", "threading", "contextvars")  # an executor thread's own frames


def _call_site() -> tuple[str, str, int, str] | None:
    """The application's frame that logged: (module name, function, line, file), past structlog's own frames.

    None when the chain runs in an executor thread (structlog's ``ainfo`` and the like): the caller is not on
    this thread's stack.
    """
    frame: FrameType | None = sys._getframe(2)  # past this function and the processor's __call__
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(_NOT_THE_CALLER):
            return None
        if module != "structlog" and not module.startswith("structlog."):
            return module, frame.f_code.co_name, frame.f_lineno, frame.f_code.co_filename
        frame = frame.f_back
    return None


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
                None if "func_name" in event_dict else _call_site(),  # CallsiteParameterAdder's, if it ran
            )
        if self._drop_event is not None:
            raise self._drop_event
        return event_dict
