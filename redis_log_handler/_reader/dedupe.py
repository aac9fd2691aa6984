"""The record ids a consumer handled most recently, to skip repeats of an at-least-once delivery."""

from __future__ import annotations

from collections import deque

__all__ = ["RecentIds"]


class RecentIds:
    """A set of the last *size* ids added (0: remembers nothing); the oldest is forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: set[object] = set()
        self._order: deque[object] = deque()

    def seen(self, record_id: object) -> bool:
        """Whether *record_id* is among the remembered ids (None, a document without an id, never is)."""
        return record_id is not None and record_id in self._ids

    def add(self, record_id: object) -> None:
        """Remember *record_id*, forgetting the oldest id past the window's size."""
        if self._size == 0 or record_id is None or record_id in self._ids:
            return
        if len(self._order) >= self._size:
            self._ids.discard(self._order.popleft())
        self._ids.add(record_id)
        self._order.append(record_id)
