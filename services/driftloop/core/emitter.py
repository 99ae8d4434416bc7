"""Non-blocking event emission through the on-disk spool: a writer thread appends what ``emit`` was
handed to the :class:`driftloop.core.spool.EventSpool`, a shipper thread delivers it to Kafka in
order and deletes what Kafka acknowledged. So the request path never waits on disk or Kafka.

Any failure that is not permanent (broker down, timeouts) leaves the batch in the spool and retries
it in order with backoff; an event Kafka refuses for good is set aside and counted in
``driftloop_events_rejected_total{reason}``; drops when the spool is full are counted in
``driftloop_events_dropped_total{reason="spool_full"}``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf import message as _message

from driftloop.core import codec
from driftloop.core.kafka import EventProducer
from driftloop.core.metrics import EventMetrics
from driftloop.core.settings import KafkaSettings
from driftloop.core.spool import PERMANENT_ERRORS, EventSpool, SpooledEvent, permanent_reason
from driftloop.core.topics import TopicSpec

log = logging.getLogger(__name__)


class EventEmitter:
    """Non-blocking ``emit``; a writer thread appends to the spool, a shipper thread delivers."""

    def __init__(
        self,
        kafka: KafkaSettings,
        spool_path: Path,
        max_bytes: int,
        metrics: EventMetrics,
        batch: int = 500,
        ship_interval_s: float = 0.25,
        retry_backoff_max_s: float = 2.0,
        ack_timeout_s: float = 30.0,
        producer_factory: Callable[[], EventProducer] | None = None,
    ) -> None:
        self._metrics = metrics
        self._batch = batch
        self._ship_interval = ship_interval_s
        self._ack_timeout = ack_timeout_s
        self._backoff_max = retry_backoff_max_s
        self._new_producer = producer_factory or (lambda: EventProducer(
            kafka, "events", max_block_ms=5000, request_timeout_ms=5000, delivery_timeout_ms=15000,
            retry_backoff_ms=200, bootstrap_timeout_ms=5000))  # bounded, so a shutdown drain stays near its time
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
            acked, rejected = self._ship(batch)
            self.spool.delete(acked)
            self.spool.set_aside(rejected)
            for e, reason in rejected:
                self._metrics.rejected.labels(self._metrics.service, reason).inc()
                log.error("Kafka refused event %d (%s, %d bytes) for good: %s; set aside, the rest flows",
                          e.seq, e.topic, len(e.value), reason)
            self._update_gauges()
            if len(acked) + len(rejected) == len(batch):
                backoff = 0.1
                self._metrics.kafka_up.set(1)
                if len(batch) < self._batch:
                    # Let the next events gather: one Kafka round trip per interval, not per event
                    # (kafka-python spends ~1 ms of CPU per produce request). They are already on
                    # disk; a shutdown (the stop event) ships at once.
                    self._stop.wait(self._ship_interval)
                continue
            self._metrics.kafka_up.set(0)
            if self._stop.is_set() and self._drain_deadline < time.monotonic():
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, self._backoff_max)

    def _ship(self, batch: list[SpooledEvent]) -> tuple[list[SpooledEvent], list[tuple[SpooledEvent, str]]]:
        """Send a batch in order; return the events Kafka acknowledged and those it refused for good
        (with the reason). Everything else stays in the spool for the next try."""
        futures = []
        rejected: list[tuple[SpooledEvent, str]] = []
        sent_all = True
        try:
            if self._producer is None:
                self._producer = self._new_producer()
            for e in batch:
                headers = [(codec.SCHEMA_HEADER, e.schema.encode()),
                           (codec.CONTENT_TYPE_HEADER, codec.CONTENT_TYPE.encode())]
                try:
                    futures.append((e, self._producer.send_raw(e.topic, e.key, e.value, headers)))
                except PERMANENT_ERRORS as exc:  # refused before sending (e.g. above max_request_size)
                    rejected.append((e, permanent_reason(exc) or "rejected"))
        except Exception as exc:  # unreachable at send time (bootstrap, metadata timeout)
            sent_all = False
            log.warning("Kafka unavailable (%s); %d events stay spooled", exc, self.spool.rows)
        acked: list[SpooledEvent] = []
        failed = not sent_all
        deadline = time.monotonic() + self._ack_timeout
        for e, fut in futures:
            # One deadline for the whole round trip, and no more waiting once a record failed (only
            # what is already acknowledged still counts): during an outage kafka-python does not
            # expire every batch at delivery_timeout_ms, and a wait per record would leave the shipper
            # blind for minutes (30 s × the partitions' batches) while kafka_up still said 1.
            try:
                md = fut.get(timeout=0 if failed else max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                reason = permanent_reason(exc)
                if reason is not None:  # the broker refused this record: retrying cannot help
                    rejected.append((e, reason))
                    continue
                if not failed:
                    log.warning("event delivery failed (%s); will retry from the spool", exc)
                failed = True
                continue
            acked.append(e)
            self._metrics.emitted.labels(self._metrics.service, md.topic).inc()
        if failed:
            self._reset_producer()
        return acked, rejected

    def _reset_producer(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # best effort on a broken connection
                self._producer.close(timeout=0)
            self._producer = None

    def _update_gauges(self) -> None:
        self._metrics.spooled_events.set(self.spool.rows)
        self._metrics.spooled_bytes.set(self.spool.bytes)
        self._metrics.set_aside.set(self.spool.rejected_rows)

    def close(self, drain_timeout: float = 10.0, ephemeral: bool = False) -> int:
        """Stop accepting, write what is queued, try to deliver for up to ``drain_timeout`` seconds.
        Whatever is left stays in the spool for the next start — unless the spool is ``ephemeral``
        (it dies with this pod): then those events are lost, and counted
        (``driftloop_events_dropped_total{reason="shutdown"}``) and logged, never silently.
        Returns how many events were left undelivered."""
        started = time.monotonic()
        self._drain_deadline = started + drain_timeout
        self._stop.set()
        self._queue.put(None)
        if self._writer.is_alive():
            self._writer.join()
        self._wake.set()
        if self._shipper.is_alive():
            self._shipper.join(timeout=drain_timeout + 35)
        self._reset_producer()
        left = self.spool.rows
        if left and ephemeral:
            self._metrics.dropped.labels(self._metrics.service, "shutdown").inc(left)
            log.error("shutting down with %d undelivered events after a %.0f s drain (%.0f s allowed); the spool "
                      "does not outlive this pod: they are lost (driftloop_events_dropped_total{reason=\"shutdown\"})",
                      left, time.monotonic() - started, drain_timeout)
        elif left:
            log.warning("shutting down with %d undelivered events; they stay in the spool for the next start", left)
        self.spool.close()
        return left
