"""Kafka client layer over kafka-python 3.0.

* :class:`EventProducer`: acks=all, idempotent, bounded retries (by ``delivery_timeout_ms``),
  delivery callbacks, records encoded by :mod:`driftloop.core.codec`.
* :class:`EventConsumer`: a consumer group with auto-commit off; :meth:`EventConsumer.process`
  decodes a batch, hands each event to a handler, sends what cannot be decoded or fails
  validation to the dead-letter topic, and commits only after all of that is done. A member left
  without partitions while its topics have some is closed and opened again (the stall watchdog).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import message as _message
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.producer.future import FutureRecordMetadata, RecordMetadata
from kafka.structs import OffsetAndMetadata, TopicPartition

from driftloop.core import codec
from driftloop.core.settings import KafkaSettings
from driftloop.core.timestamps import timestamp
from driftloop.core.topics import DLQ, TopicSpec
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)

M = TypeVar("M", bound=_message.Message)
DeliveryCallback = Callable[[RecordMetadata | None, Exception | None], None]


class InvalidEvent(ValueError):
    """Raised by a handler for an event that decoded but breaks the contract (e.g. no request id).

    ``error_type`` goes into DeadLetter.error_type.
    """

    def __init__(self, reason: str, error_type: str = "invalid") -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


class EventProducer:
    """Produces protobuf events with acks=all and idempotence; retries bounded in time."""

    def __init__(self, settings: KafkaSettings, client_id_suffix: str = "producer", **overrides: Any):
        config: dict[str, Any] = {
            **settings.client_config(),
            "client_id": f"{settings.client_id}-{client_id_suffix}",
            "acks": "all",
            "enable_idempotence": True,
            "delivery_timeout_ms": settings.delivery_timeout_ms,
            "linger_ms": settings.linger_ms,
            "max_block_ms": settings.max_block_ms,
            "allow_auto_create_topics": False,
            "max_in_flight_requests_per_connection": 5,
            # kafka-python's own sensors (per record) are read by nobody here and cost ~4 % of the
            # inference process under load (py-spy, issue 13): our counters are the record.
            "metrics_enabled": False,
        }
        config.update(overrides)
        self._producer = KafkaProducer(**config)

    def send(
        self,
        topic: TopicSpec | str,
        key: str | bytes | None,
        event: _message.Message | None,
        on_delivery: DeliveryCallback | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> FutureRecordMetadata:
        """Send one event (or a tombstone when ``event`` is None). Never blocks on delivery."""
        name = topic.name if isinstance(topic, TopicSpec) else topic
        if event is None:
            value, headers = None, []
        else:
            value, headers = codec.encode(event)
        raw_key = key.encode() if isinstance(key, str) else key
        future = self.send_raw(name, raw_key, value, [*headers, *extra_headers])
        if on_delivery is not None:
            future.add_callback(lambda md: on_delivery(md, None))
            future.add_errback(lambda exc: on_delivery(None, exc))
        return future

    def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> FutureRecordMetadata:
        """Send already-encoded bytes (e.g. replayed from the spool)."""
        return self._producer.send(topic, value=value, key=key, headers=list(headers))

    def send_and_wait(
        self, topic: TopicSpec | str, key: str | bytes | None, event: _message.Message | None,
        timeout: float = 30.0,
    ) -> RecordMetadata:
        """Send and block until the broker acknowledged (acks=all) or raise."""
        return self.send(topic, key, event).get(timeout=timeout)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        self._producer.close(timeout=timeout)


@dataclass(frozen=True)
class Delivered(Generic[M]):
    """A decoded event and where it came from."""

    event: M
    record: ConsumerRecord


class DeadLetterSink:
    """The failure policy for records a consumer cannot use: publish them to the DLQ topic, with the
    reason and origin, and wait for the broker's acknowledgement before the offset is committed."""

    def __init__(self, producer: EventProducer, consumer_group: str, timeout: float = 30.0) -> None:
        self._producer = producer
        self._group = consumer_group
        self._timeout = timeout
        self.count = 0

    def __call__(self, record: ConsumerRecord, error_type: str, reason: str) -> None:
        letter = events_pb2.DeadLetter(
            origin_topic=record.topic,
            origin_partition=record.partition,
            origin_offset=record.offset,
            key=record.key or b"",
            value=record.value or b"",
            error_type=error_type,
            reason=reason[:2000],
            consumer_group=self._group,
            time=timestamp(),
        )
        for k, v in record.headers or ():
            letter.headers[k] = v or b""
        log.warning(
            "dead-lettering %s[%d]@%d: %s: %s", record.topic, record.partition, record.offset, error_type,
            reason,
        )
        self._producer.send_and_wait(DLQ, record.topic, letter, timeout=self._timeout)
        self.count += 1


class EventConsumer(Generic[M]):
    """A consumer-group member for one event type; offsets are committed only after processing.

    **Stall watchdog.** kafka-python 3.0.12's group member can end a rebalance with no partitions and
    never rejoin: seen in this project's CI, a monitor that joined its group before its first metadata
    fetch, was elected leader of the next generation and then consumed nothing for good (its poll
    spinning, no error). A loop whose monitor reads nothing is blind, and nothing would say so. So the
    topics' metadata is fetched before subscribing, and a member that has had no partition for
    ``stall_after_s`` while its topics have partitions is closed (leaving the group) and opened again
    — it resumes from the committed offsets, and nothing is lost (offsets are committed only after
    processing). A member that is idle by design (more members than partitions) rejoins too, at
    doubling intervals up to ``MAX_STALL_S``: a rebalance of its group at most every half hour."""

    MAX_STALL_S = 1800.0

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[TopicSpec],
        group_id: str,
        expected: type[M] | dict[str, type[_message.Message]],
        dead_letters: Callable[[ConsumerRecord, str, str], None] | None = None,
        stall_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        factory: Callable[..., Any] = KafkaConsumer,
        **overrides: Any,
    ) -> None:
        config: dict[str, Any] = {
            **settings.client_config(),
            "client_id": f"{settings.client_id}-{group_id}",
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
            "max_poll_records": 500,
            # Not "metrics_enabled": False as for the producer: with it, kafka-python 3.0.12's group
            # member got no partitions and was dropped from its group (seen in the hostile suite).
        }
        config.update(overrides)
        self.group_id = group_id
        self._expected = expected
        self._dead_letters = dead_letters
        self._topics = [t.name for t in topics]
        self._config = config
        self._factory, self._clock = factory, clock
        self._stall_after_s = self._stall_s = stall_after_s
        self.reopened = 0  # times the stall watchdog closed the member and opened it again
        self._consumer = self._open()

    def _open(self) -> Any:
        consumer = self._factory(**self._config)
        for name in self._topics:  # the partitions known before the first JoinGroup (see the class doc)
            consumer.partitions_for_topic(name)
        consumer.subscribe(self._topics)
        self._unassigned_since = self._clock()
        return consumer

    def _watch(self) -> None:
        """The stall watchdog (class doc), after each poll."""
        now = self._clock()
        if self._consumer.assignment():
            self._unassigned_since, self._stall_s = now, self._stall_after_s
            return
        if now - self._unassigned_since < self._stall_s:
            return
        if not any(self._consumer.partitions_for_topic(t) for t in self._topics):
            self._unassigned_since = now  # nothing to be assigned: not a stall
            return
        log.warning("consumer group %s: no partition assigned for %.0f s while %s have some; leaving the group "
                    "and joining again", self.group_id, now - self._unassigned_since, ", ".join(self._topics))
        self._consumer.close(autocommit=False)
        self._consumer = self._open()
        self.reopened += 1
        self._stall_s = min(self._stall_s * 2, self.MAX_STALL_S)

    @property
    def raw(self) -> KafkaConsumer:
        return self._consumer

    def _decode(self, record: ConsumerRecord) -> _message.Message:
        if isinstance(self._expected, dict):
            cls = self._expected.get(record.topic)
            if cls is None:
                raise codec.UndecodableRecord("unexpected_topic", f"no event type for topic {record.topic}")
            return codec.decode(record.value, record.headers, cls)
        return codec.decode(record.value, record.headers, self._expected)

    def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[ConsumerRecord]:
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        self._watch()
        return [r for records in batches.values() for r in records]

    def process(
        self,
        handler: Callable[[Delivered[M]], None],
        timeout_ms: int = 1000,
        max_records: int | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> int:
        """Poll once, handle every record, dead-letter the bad ones, run ``before_commit`` (where a
        batch-level effect is made durable), then commit. Returns the number of records consumed
        (good and bad). A record whose handler raises — InvalidEvent or any other exception — is
        dead-lettered with the exception and the batch goes on: one record can never stop the
        consumer (no crash loop on redelivery). An exception from ``before_commit`` propagates and
        nothing of the batch is committed, so the batch is redelivered."""
        records = self.poll(timeout_ms, max_records)
        if not records:
            return 0
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            try:
                event = self._decode(record)
                handler(Delivered(event, record))  # type: ignore[arg-type]
            except (codec.UndecodableRecord, InvalidEvent) as exc:
                if self._dead_letters is None:
                    raise
                self._dead_letters(record, exc.error_type, exc.reason)
            except Exception as exc:  # a bug or an input no rule foresaw: this record only
                if self._dead_letters is None:
                    raise
                log.exception("handler failed on %s[%d]@%d", record.topic, record.partition, record.offset)
                self._dead_letters(record, "handler_error", f"{type(exc).__name__}: {exc}"[:2000])
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        if before_commit is not None:
            before_commit()
        self.commit(offsets)
        return len(records)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})

    def close(self) -> None:
        # Offsets are committed explicitly after processing; never auto-commit on close.
        self._consumer.close(autocommit=False)

