"""The on-disk event log in front of Kafka, shared by producing services (storage only; the threads
that fill and ship it are :class:`driftloop.core.emitter.EventEmitter`).

Events are appended to a bounded sqlite log (WAL mode) and deleted only once Kafka acknowledged
them (acks=all), so a broker outage only grows the log and events survive a restart of the
process. When the log exceeds its byte bound, the *oldest* undelivered events are dropped (the
emitter counts them in ``driftloop_events_dropped_total{reason="spool_full"}``) — never silently.
An event Kafka refuses *for good* (:data:`PERMANENT_ERRORS`) is moved to a side table
(``rejected``, bounded, oldest dropped first) so the events behind it keep flowing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import errors as kafka_errors

from driftloop.core.sqlite import open_db

log = logging.getLogger(__name__)

# Errors that retrying cannot fix: the record itself is refused (client- or broker-side).
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError, kafka_errors.InvalidRecordError,
    kafka_errors.CorruptRecordError, kafka_errors.InvalidTimestampError,
)
REJECTED_MAX_ROWS = 10_000  # rejected events kept aside for inspection; beyond that the oldest go


def permanent_reason(exc: BaseException) -> str | None:
    """The metric reason for an error that rejects a record for good, or None if retrying may help."""
    return type(exc).__name__ if isinstance(exc, PERMANENT_ERRORS) else None


@dataclass(frozen=True)
class SpooledEvent:
    seq: int
    topic: str
    key: bytes
    schema: str
    value: bytes


class EventSpool:
    """The on-disk log. Thread-safe; one sqlite connection guarded by a lock."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = open_db(path, "NORMAL", threads=True)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " key BLOB NOT NULL, schema TEXT NOT NULL, value BLOB NOT NULL, size INTEGER NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS rejected (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB NOT NULL,"
            " schema TEXT NOT NULL, value BLOB NOT NULL, reason TEXT NOT NULL, time REAL NOT NULL)"
        )
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        self.rows, self.bytes = int(rows), int(size)
        self.rejected_rows = int(self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0])

    def append(self, items: list[tuple[str, bytes, str, bytes]]) -> int:
        """Append (topic, key, schema, value) rows; return how many oldest rows were dropped."""
        dropped = 0
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO events (topic, key, schema, value, size) VALUES (?, ?, ?, ?, ?)",
                [(t, k, s, v, len(k) + len(v)) for t, k, s, v in items],
            )
            self.rows += len(items)
            self.bytes += sum(len(k) + len(v) for _, k, _, v in items)
            while self.bytes > self.max_bytes and self.rows > 0:
                seq, size = self._db.execute("SELECT seq, size FROM events ORDER BY seq LIMIT 1").fetchone()
                self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                self.rows -= 1
                self.bytes -= size
                dropped += 1
            self._db.execute("COMMIT")
        return dropped

    def peek(self, limit: int) -> list[SpooledEvent]:
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, topic, key, schema, value FROM events ORDER BY seq LIMIT ?", (limit,)
            )
            return [SpooledEvent(*row) for row in cur.fetchall()]

    def delete(self, events: list[SpooledEvent]) -> None:
        if not events:
            return
        with self._lock:
            self._db.execute("BEGIN")
            for e in events:
                cur = self._db.execute("DELETE FROM events WHERE seq = ? RETURNING size", (e.seq,))
                row = cur.fetchone()
                if row is not None:  # may already be gone (dropped as oldest while in flight)
                    self.rows -= 1
                    self.bytes -= row[0]
            self._db.execute("COMMIT")

    def set_aside(self, rejected: list[tuple[SpooledEvent, str]]) -> None:
        """Move events Kafka refused for good out of the log, with their reason (bounded)."""
        if not rejected:
            return
        with self._lock:
            self._db.execute("BEGIN")
            for e, reason in rejected:
                cur = self._db.execute("DELETE FROM events WHERE seq = ? RETURNING size", (e.seq,))
                row = cur.fetchone()
                if row is None:
                    continue
                self.rows -= 1
                self.bytes -= row[0]
                # Kept small: the event's bytes only when they are not themselves the problem.
                kept = e.value if len(e.value) <= 64 * 1024 else b""
                self._db.execute("INSERT INTO rejected (seq, topic, key, schema, value, reason, time) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (e.seq, e.topic, e.key[:256], e.schema, kept, reason, time.time()))
                self.rejected_rows += 1
            over = self.rejected_rows - REJECTED_MAX_ROWS
            if over > 0:
                self._db.execute("DELETE FROM rejected WHERE seq IN (SELECT seq FROM rejected ORDER BY seq LIMIT ?)",
                                 (over,))
                self.rejected_rows -= over
            self._db.execute("COMMIT")

    def rejected(self, limit: int = 100) -> list[tuple[int, str, str]]:
        """(seq, topic, reason) of the events set aside, oldest first."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT seq, topic, reason FROM rejected ORDER BY seq LIMIT ?", (limit,)).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
