"""RedisLogConsumer: the far end, where the records of every producer reach one reader that loses none.

One loop serves both ways to use it. It reads a batch, turns each entry into
a document (an entry that is not a JSON object goes to the dead-letter stream
at once), skips the ids it handled recently, and hands each document out: to
the caller's ``for`` loop (:meth:`RedisLogConsumer.records`) or to the local
logging configuration (:meth:`RedisLogConsumer.run`). Handled and
dead-lettered entries are acknowledged in one ``XACK`` sent with the next
read, or at once when the loop stops.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.exceptions

from redis_log_handler._schema.log_record import to_log_record
from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.diagnostics import describe, report
from redis_log_handler._shared.eviction import evicting_policy, warn_if_evicting
from redis_log_handler._shared.retry import retry_delay, transient

from .dead_letter import DeadLetters
from .dedupe import RecentIds
from .entries import Entry, EntryId, Poison, parse_entry
from .feeds import Feed, ShardedFeed, open_feed, reopens_on_error
from .list_and_channel import ChannelListener
from .settings import ReaderSettings

__all__ = ["RedisLogConsumer"]

_READ_COUNTS = ("read", "handled", "acked", "duplicates", "claimed", "deleted_pending", "trimmed", "trimmed_unread")


@dataclass(slots=True)
class _Batch:
    """Entries read in one call; the loop over them counts those it is done with and collects ids to acknowledge."""

    entries: list[Entry]
    done: int = 0
    to_ack: list[EntryId] = field(default_factory=list)


class RedisLogConsumer:
    """Read the records that :class:`RedisHandler` writes, from any number of producers, at least once.

    The constructor only checks its arguments (``ValueError`` naming the first
    bad one); the connection is made on the first read.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str = "logs",
        mode: str = "stream",
        group: str = "redis-log-handler",
        name: str | None = None,
        start: str = "0",
        batch_size: int = 500,
        block: float = 1.0,
        claim_idle: float = 60.0,
        dedupe_window: int = 100_000,
        dead_letter: str | None = None,
        max_failures: int = 3,
        shards: int = 1,
        retain: int | None = 10_000,
        retain_seconds: float = 0.0,
    ) -> None:
        arguments = locals()
        self.settings = ReaderSettings.build(**{name: arguments[name] for name in ReaderSettings.names()})
        self._client: Any = None
        self._feed: Feed | ShardedFeed | None = None
        self._recent = RecentIds(self.settings.dedupe_window)
        self._counts = dict.fromkeys((*_READ_COUNTS, "errors"), 0)
        self._lag: int | None = None
        assert self.settings.dead_letter is not None
        self._dead_letters = DeadLetters(self.settings.dead_letter, self.settings.key)

    def __repr__(self) -> str:
        s = self.settings
        return f"<RedisLogConsumer {s.mode} {s.key!r} at {redact_url(s.url or '')}>"

    def stats(self) -> dict[str, int | None]:
        """Counts of entries since this consumer was created, and ``lag`` (entries waiting, None if unknown).

        ``trimmed``: entries this consumer's retention removed (every group had finished with them);
        ``trimmed_unread``: entries removed by someone else (the handler's ``maxlen``, an ``XTRIM``)
        before this consumer's group read them.
        """
        counts = self._counts
        return {
            **{name: counts[name] for name in _READ_COUNTS},
            "dead_lettered": self._dead_letters.count,
            "errors": counts["errors"],
            "lag": self._lag,
        }

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield schema-1 documents for ever; an entry is acknowledged once the loop asks for the next one.

        If the loop stops (``break``, an exception), the document it was given
        is not acknowledged: in stream mode it stays pending and is read again,
        in list mode it and the rest of the popped batch go back to the head of
        the list.
        """
        with contextlib.closing(self._batches(None)) as batches:
            for batch in batches:
                for entry in batch.entries:
                    document = self._admit(entry, batch)
                    if document is not None:
                        yield document
                        self._handled(entry, document, batch)
                    batch.done += 1

    def run(self, stop: threading.Event | None = None) -> None:
        """Re-emit every record into the local logging configuration until *stop* is set (or SIGINT/SIGTERM).

        Each document is rebuilt with :func:`to_log_record` and handed to
        ``logging.getLogger(name).handle``; the entry is acknowledged after the
        handlers returned. A record whose handlers raise is tried again, up to
        ``max_failures`` times, then goes to the dead-letter stream. Signal
        handlers are installed only when called in the main thread; the batch
        in hand is finished before returning.
        """
        stop = stop or threading.Event()
        loggers: dict[str, logging.Logger] = {}  # getLogger takes a lock on every call
        with _stop_on_signals(stop), contextlib.closing(self._batches(stop)) as batches:
            for batch in batches:
                for entry in batch.entries:
                    document = self._admit(entry, batch)
                    if document is not None:
                        self._reemit(entry, document, batch, loggers)
                    batch.done += 1

    def close(self) -> None:
        """Close the connection (a later read opens a new one). Idempotent."""
        if isinstance(self._feed, ChannelListener):
            self._feed.close()
        self._feed = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _batches(self, stop: threading.Event | None) -> Generator[_Batch]:
        """Read batches until *stop* is set, riding out connection failures.

        The entries a batch's loop handled are acknowledged with the next read
        (one round trip for both, where the source allows), or at once when
        the loop stops; entries it did not get to are given back.
        """
        failures = 0
        to_ack: list[EntryId] = []
        try:
            while stop is None or not stop.is_set():
                try:
                    feed = self._open()
                    batch = _Batch(feed.read(to_ack))
                    self._counts["acked"] += len(to_ack)
                    to_ack = []
                    self._lag = feed.lag()
                except redis.exceptions.RedisError as exc:
                    if not transient(exc):
                        raise
                    # XACK is idempotent: ids whose acknowledgement may have been lost are sent again.
                    if reopens_on_error(self.settings):
                        self.close()  # entries it held stay pending: this consumer reads its history again
                    failures += 1
                    self._counts["errors"] += 1
                    report("consumer-read", f"cannot read from Redis ({describe(exc)}); retrying")
                    self._wait(stop, retry_delay(failures))
                    continue
                failures = 0
                self._counts["read"] += len(batch.entries)
                try:
                    yield batch
                finally:
                    to_ack += batch.to_ack
                    self._give_back(feed, batch.entries[batch.done :])
        finally:
            self._ack_now(to_ack)
            if self._feed is not None:
                self._settle(self._feed)

    def _give_back(self, feed: Feed | ShardedFeed, unhandled: list[Entry]) -> None:
        try:
            feed.give_back(unhandled)
        except redis.exceptions.RedisError as exc:
            self._counts["errors"] += 1
            report("consumer-give-back", f"cannot give back {len(unhandled)} unhandled entries ({describe(exc)})")

    def _settle(self, feed: Feed | ShardedFeed) -> None:
        try:
            feed.stop()
        except redis.exceptions.RedisError as exc:
            self._counts["errors"] += 1
            report("consumer-stop", f"cannot settle the reading connection ({describe(exc)})")

    def _ack_now(self, ids: list[EntryId]) -> None:
        """Acknowledge *ids* when the loop stops (they stay pending, to be claimed, if Redis fails now)."""
        if not ids or self._feed is None:
            return
        try:
            self._feed.ack(ids)
        except redis.exceptions.RedisError as exc:
            self._counts["errors"] += 1
            report("consumer-ack", f"cannot acknowledge {len(ids)} entries ({describe(exc)})")
        else:
            self._counts["acked"] += len(ids)

    def _admit(self, entry: Entry, batch: _Batch) -> dict[str, Any] | None:
        """The entry's document if it is to be handled; None for poison (dead-lettered) and repeats (acknowledged)."""
        document = parse_entry(entry)
        if type(document) is Poison:
            self._dead(entry, document.reason, batch)
            return None
        assert type(document) is dict
        if self._recent.seen(document.get("id")):
            self._counts["duplicates"] += 1
            if entry[0] is not None:
                batch.to_ack.append(entry[0])
            return None
        return document

    def _handled(self, entry: Entry, document: dict[str, Any], batch: _Batch) -> None:
        self._recent.add(document.get("id"))
        self._counts["handled"] += 1
        if entry[0] is not None:
            batch.to_ack.append(entry[0])

    def _reemit(
        self, entry: Entry, document: dict[str, Any], batch: _Batch, loggers: dict[str, logging.Logger]
    ) -> None:
        """Hand the record to its logger, trying up to max_failures times, else dead-letter it."""
        for _ in range(self.settings.max_failures):
            record = to_log_record(document)  # a new record each time: a failed handler may have changed it
            logger = loggers.get(record.name)
            if logger is None:
                logger = loggers[record.name] = logging.getLogger(record.name)
            try:
                logger.handle(record)
            except Exception as exc:
                self._counts["errors"] += 1
                report("consumer-handler", f"a local handler failed on {document.get('id')!r} ({describe(exc)})")
                error = exc
            else:
                self._handled(entry, document, batch)
                return
        failures = self.settings.max_failures
        self._dead(entry, f"local handlers failed {failures} times, last: {describe(error)}", batch)

    def _dead(self, entry: Entry, reason: str, batch: _Batch) -> None:
        """Send *entry* to the dead-letter stream, then acknowledge it (if that write failed, it stays pending)."""
        assert self._client is not None
        try:
            self._dead_letters.add(self._client, entry, reason)
        except redis.exceptions.RedisError as exc:
            self._counts["errors"] += 1
            # A stream entry stays pending and is tried again; a popped list element or a message is lost.
            report("consumer-dead-letter", f"cannot write to {self.settings.dead_letter!r} ({describe(exc)})")
            return
        if entry[0] is not None:
            batch.to_ack.append(entry[0])

    def _open(self) -> Feed | ShardedFeed:
        if self._feed is None:
            self._client, self._feed = open_feed(self.settings, self._counts)
            if self.settings.mode != "pubsub":
                warn_if_evicting(_eviction_policy(self._client), self.settings.key, "consumer")
        return self._feed

    @staticmethod
    def _wait(stop: threading.Event | None, seconds: float) -> None:
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)


def _eviction_policy(client: Any) -> str | None:
    try:
        return evicting_policy(client.config_get("maxmemory-policy"))
    except redis.exceptions.ResponseError:  # CONFIG denied by an ACL, or renamed
        return None


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set *stop* on SIGINT and SIGTERM while the block runs, when in the main thread (else do nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
