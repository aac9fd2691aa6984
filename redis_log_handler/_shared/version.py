"""The installed distribution's version: what ``__version__``, the heartbeat and ``--version`` say."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]

try:
    VERSION = version("redis-log-bridge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    VERSION = "0+unknown"
