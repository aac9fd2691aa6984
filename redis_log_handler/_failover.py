"""With ``wait_replicas``: the batches written lately, kept to send again to a replica promoted after a failover.

``WAIT N`` says that N replicas hold a batch now, not that the replica promoted
later is one of them. A forced failover (``SENTINEL FAILOVER``, ``CLUSTER
FAILOVER``) leaves the old master taking writes until it is reconfigured, and
a replica not yet moved to the new master acknowledges them, then drops them
when it moves. So the writer keeps the last records it counted written, with
the replication id of the master that took them. Each time it connects it
reads the master's ``INFO replication``: a master whose ``master_replid2`` is
the old master's ``master_replid`` is a replica promoted from that history,
and the kept batches are sent to it again (duplicates are counted in
``retries_unknown_outcome``). A master with an unrelated history (a slot that
moved to another master with its keys) gets nothing again.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RecentWrites", "ReplicationHistory", "replication_history"]

ReplicationHistory = tuple[str, str]
"""A master's ``master_replid`` and ``master_replid2`` (the id of the history it was promoted from)."""


def replication_history(info: bytes | str) -> ReplicationHistory:
    """The replication ids in an ``INFO replication`` reply."""
    text = info.decode() if isinstance(info, bytes) else info
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return fields.get("master_replid", "").strip(), fields.get("master_replid2", "").strip()


class RecentWrites:
    """Whole batches covering the last *limit* records counted written, with their master's replication id."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._batches: deque[list[bytes]] = deque()
        self._records = 0
        self._replid: str | None = None  # the master that took the kept batches

    def add(self, batch: list[bytes]) -> None:
        """Keep *batch*, written to the current master; forget the oldest batches the limit no longer needs."""
        self._batches.append(batch)
        self._records += len(batch)
        while self._records - len(self._batches[0]) >= self._limit:
            self._records -= len(self._batches.popleft())

    def connected(self, history: ReplicationHistory) -> list[list[bytes]]:
        """The writer is connected to a master with *history*: the kept batches it must be sent again, if any."""
        replid, promoted_from = history
        previous, self._replid = self._replid, replid
        if previous is None or previous == replid:
            return []  # the first master, or the same one again
        batches = list(self._batches)
        self._batches.clear()
        self._records = 0
        return batches if promoted_from == previous else []
