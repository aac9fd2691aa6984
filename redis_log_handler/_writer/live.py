"""Every RedisHandler alive in this process, held weakly: what the metrics collectors report on."""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["live_handlers", "register_live"]

_handlers: weakref.WeakSet[Any] = weakref.WeakSet()


def register_live(handler: Any) -> None:
    """Report on *handler* while it lives."""
    _handlers.add(handler)


def live_handlers() -> list[Any]:
    """The handlers alive now (closed ones too, until they are garbage-collected: their counts stay)."""
    return list(_handlers)
