"""A write-ahead event log on local disk in front of Kafka, shared by producing services.

Every event is appended to a bounded sqlite log (WAL mode) by a writer thread and shipped to Kafka
in order by a shipper thread; rows are deleted only once Kafka acknowledged them (acks=all). So the
request path never waits on Kafka, a broker outage only grows the log, and events survive a
restart of the process. When the log exceeds its byte bound, the *oldest* undelivered events are
dropped and counted (``driftloop_events_dropped_total{reason="spool_full"}``) — never silently.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import message as _message

from driftloop.core import codec
from driftloop.core.kafka import EventProducer
from driftloop.core.metrics import EventMetrics
from driftloop.core.settings import KafkaSettings
from driftloop.core.sqlite import open_db
from driftloop.core.topics import TopicSpec

log = logging.getLogger(__name__)


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
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        self.rows, self.bytes = int(rows), int(size)

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

    def close(self) -> None:
        with self._lock:
            self._db.close()


class EventEmitter:
    """Non-blocking ``emit``; a writer thread appends to the spool, a shipper thread delivers."""

    def __init__(
        self,
        kafka: KafkaSettings,
        spool_path: Path,
        max_bytes: int,
        metrics: EventMetrics,
        batch: int = 500,
        retry_backoff_max_s: float = 2.0,
    ) -> None:
        self._kafka = kafka
        self._metrics = metrics
        self._batch = batch
        self._backoff_max = retry_backoff_max_s
        self.spool = EventSpool(spool_path, max_bytes)
        self._queue: queue.SimpleQueue[tuple[str, bytes, str, bytes] | None] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._producer: EventProducer | None = None
        self._drain_deadline = float("inf")
        self._writer = threading.Thread(target=self._write_loop, name="event-spool-writer", daemon=True)
        self._shipper = threading.Thread(target=self._ship_loop, name="event-shipper", daemon=True)
        self._update_gauges()

    def start(self) -> None:
        self._writer.start()
        self._shipper.start()

    def emit(self, topic: TopicSpec, key: str, event: _message.Message) -> None:
        """Hand an event to the pipeline; never blocks on disk or Kafka."""
        value, _ = codec.encode(event)
        self._queue.put((topic.name, key.encode(), event.DESCRIPTOR.full_name, value))

    # -- writer -------------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            items = [] if item is None else [item]
            done = item is None
            while len(items) < 1000:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    done = True
                    break
                items.append(nxt)
            if items:
                dropped = self.spool.append(items)
                if dropped:
                    self._metrics.dropped.labels(self._metrics.service, "spool_full").inc(dropped)
                    log.error("event spool full: dropped the %d oldest undelivered events", dropped)
                self._update_gauges()
                self._wake.set()
            if done:
                return

    # -- shipper ------------------------------------------------------------------------------------
    def _ship_loop(self) -> None:
        backoff = 0.1
        while True:
            batch = self.spool.peek(self._batch)
            if not batch:
                if self._stop.is_set() and not self._writer.is_alive():
                    return
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            acked = self._ship(batch)
            self.spool.delete(acked)
            self._update_gauges()
            if len(acked) == len(batch):
                backoff = 0.1
                self._metrics.kafka_up.set(1)
                continue
            self._metrics.kafka_up.set(0)
            if self._stop.is_set() and self._drain_deadline < time.monotonic():
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max)

    def _ship(self, batch: list[SpooledEvent]) -> list[SpooledEvent]:
        """Send a batch in order; return the events Kafka acknowledged."""
        futures = []
        try:
            if self._producer is None:
                self._producer = EventProducer(
                    self._kafka, "events", max_block_ms=5000, request_timeout_ms=5000,
                    delivery_timeout_ms=15000, retry_backoff_ms=200,
                )
            for e in batch:
                headers = [(codec.SCHEMA_HEADER, e.schema.encode()),
                           (codec.CONTENT_TYPE_HEADER, codec.CONTENT_TYPE.encode())]
                futures.append((e, self._producer.send_raw(e.topic, e.key, e.value, headers)))
        except Exception as exc:  # unreachable at send time (bootstrap, metadata timeout)
            log.warning("Kafka unavailable (%s); %d events stay spooled", exc, self.spool.rows)
        acked: list[SpooledEvent] = []
        failed = len(futures) < len(batch)
        for e, fut in futures:
            try:
                md = fut.get(timeout=30)
            except Exception as exc:
                if not failed:
                    log.warning("event delivery failed (%s); will retry from the spool", exc)
                failed = True
                continue
            acked.append(e)
            self._metrics.emitted.labels(self._metrics.service, md.topic).inc()
        if failed:
            self._reset_producer()
        return acked

    def _reset_producer(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # best effort on a broken connection
                self._producer.close(timeout=0)
            self._producer = None

    def _update_gauges(self) -> None:
        self._metrics.spooled_events.set(self.spool.rows)
        self._metrics.spooled_bytes.set(self.spool.bytes)

    def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, write what is queued, try to deliver for up to ``drain_timeout`` seconds;
        whatever is left stays in the spool for the next start."""
        self._drain_deadline = time.monotonic() + drain_timeout
        self._stop.set()
        self._queue.put(None)
        if self._writer.is_alive():
            self._writer.join()
        self._wake.set()
        if self._shipper.is_alive():
            self._shipper.join(timeout=drain_timeout + 35)
        self._reset_producer()
        self.spool.close()
