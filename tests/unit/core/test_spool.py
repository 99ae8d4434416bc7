"""The on-disk event log: order, persistence across reopen, and the explicit drop-oldest bound."""

from __future__ import annotations

from pathlib import Path

from driftloop.core.spool import EventSpool


def rows(n: int, start: int = 0, size: int = 100) -> list[tuple[str, bytes, str, bytes]]:
    return [("t", f"k{i}".encode(), "s", bytes(size)) for i in range(start, start + n)]


def test_fifo_and_delete(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db", 1 << 20)
    assert spool.append(rows(5)) == 0
    batch = spool.peek(3)
    assert [e.key for e in batch] == [b"k0", b"k1", b"k2"]
    spool.delete(batch[:2])
    assert [e.key for e in spool.peek(10)] == [b"k2", b"k3", b"k4"]
    assert spool.rows == 3
    spool.close()


def test_survives_reopen(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db", 1 << 20)
    spool.append(rows(4))
    spool.close()
    again = EventSpool(tmp_path / "s.db", 1 << 20)
    assert again.rows == 4 and again.bytes == sum(len(k) + len(v) for _, k, _, v in rows(4))
    assert [e.key for e in again.peek(10)] == [b"k0", b"k1", b"k2", b"k3"]
    again.close()


def test_full_spool_drops_oldest_and_says_how_many(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db", max_bytes=1000)
    assert spool.append(rows(8)) == 0  # 8 × 102 bytes = 816
    dropped = spool.append(rows(4, start=8))  # 1224 bytes: the two oldest must go
    assert dropped == 3 or dropped == 2
    kept = [e.key for e in spool.peek(100)]
    assert kept[-1] == b"k11" and kept[0] == f"k{dropped}".encode()
    assert spool.bytes <= 1000
    spool.delete(spool.peek(100))
    assert spool.rows == 0 and spool.bytes == 0
    spool.close()


class _Future:
    def __init__(self, topic: str, exc: Exception | None = None) -> None:
        self.topic, self.exc = topic, exc

    def get(self, timeout: float | None = None):
        if self.exc is not None:
            raise self.exc
        return self


class _Producer:
    """Refuses values above ``limit`` at send time (as kafka-python does above max_request_size) and
    ``broker_refuses`` by key at delivery (as the broker does above max.message.bytes)."""

    def __init__(self, limit: int, broker_refuses: set[bytes] = frozenset()) -> None:
        self.limit, self.broker_refuses, self.sent = limit, broker_refuses, []

    def send_raw(self, topic, key, value, headers):
        from kafka.errors import MessageSizeTooLargeError

        if len(value) > self.limit:
            raise MessageSizeTooLargeError(f"{len(value)} bytes")
        if key in self.broker_refuses:
            return _Future(topic, MessageSizeTooLargeError("broker: too large"))
        self.sent.append(key)
        return _Future(topic)

    def close(self, timeout=None) -> None:
        pass


def test_an_event_kafka_refuses_for_good_is_set_aside_and_the_rest_flows(tmp_path: Path) -> None:
    import time

    from prometheus_client import CollectorRegistry

    from driftloop.core.emitter import EventEmitter
    from driftloop.core.metrics import EventMetrics
    from driftloop.core.settings import KafkaSettings
    from driftloop.core.topics import PREDICTIONS
    from driftloop.v1 import events_pb2

    producer = _Producer(limit=10_000, broker_refuses={b"r-3"})
    metrics = EventMetrics(CollectorRegistry(), "test")
    emitter = EventEmitter(KafkaSettings(), tmp_path / "s.db", 1 << 24, metrics, batch=4,
                           producer_factory=lambda: producer)
    emitter.start()
    for i in range(10):
        prompt = "x" * (50_000 if i == 1 else 10)  # r-1 is refused by the client, r-3 by the broker
        emitter.emit(PREDICTIONS, f"r-{i}", events_pb2.PredictionEvent(request_id=f"r-{i}", prompt=prompt))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(producer.sent) < 8:
        time.sleep(0.05)
    assert producer.sent == [f"r-{i}".encode() for i in (0, 2, 4, 5, 6, 7, 8, 9)]  # in order, none blocked
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and emitter.spool.rows:
        time.sleep(0.05)
    assert emitter.spool.rows == 0 and emitter.spool.rejected_rows == 2
    assert [(topic, reason) for _, topic, reason in emitter.spool.rejected()] == \
        [(PREDICTIONS.name, "MessageSizeTooLargeError")] * 2
    assert metrics.rejected.labels("test", "MessageSizeTooLargeError")._value.get() == 2
    assert metrics.kafka_up._value.get() == 1
    emitter.close(drain_timeout=1)


class _DownProducer(_Producer):
    def send_raw(self, topic, key, value, headers):
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError("broker unreachable")


def test_shutdown_with_an_ephemeral_spool_counts_what_it_loses(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from driftloop.core.emitter import EventEmitter
    from driftloop.core.metrics import EventMetrics
    from driftloop.core.settings import KafkaSettings
    from driftloop.core.topics import PREDICTIONS
    from driftloop.v1 import events_pb2

    for ephemeral in (False, True):
        metrics = EventMetrics(CollectorRegistry(), "test")
        emitter = EventEmitter(KafkaSettings(), tmp_path / f"s-{ephemeral}.db", 1 << 24, metrics,
                               retry_backoff_max_s=0.1, producer_factory=lambda: _DownProducer(1 << 20))
        emitter.start()
        for i in range(5):
            emitter.emit(PREDICTIONS, f"r-{i}", events_pb2.PredictionEvent(request_id=f"r-{i}"))
        assert emitter.close(drain_timeout=0.5, ephemeral=ephemeral) == 5
        lost = metrics.dropped.labels("test", "shutdown")._value.get()
        assert lost == (5 if ephemeral else 0)  # kept for the next start, or counted: never silent
    assert EventSpool(tmp_path / "s-False.db", 1 << 20).rows == 5


def test_the_shipper_lets_events_gather_between_round_trips_and_ships_at_once_on_close(tmp_path: Path) -> None:
    """After a round trip that was not a full batch the shipper waits ``ship_interval_s`` (the events
    wait on disk), so a steady trickle costs one Kafka request per interval, not one per event
    (kafka-python spends ~1 ms of CPU per produce request); a close ships what is left without it."""
    import time

    from prometheus_client import CollectorRegistry

    from driftloop.core.emitter import EventEmitter
    from driftloop.core.metrics import EventMetrics
    from driftloop.core.settings import KafkaSettings
    from driftloop.core.topics import PREDICTIONS
    from driftloop.v1 import events_pb2

    producer = _Producer(limit=1 << 20)
    emitter = EventEmitter(KafkaSettings(), tmp_path / "s.db", 1 << 24, EventMetrics(CollectorRegistry(), "test"),
                           batch=100, ship_interval_s=1.0, producer_factory=lambda: producer)
    round_trips: list[int] = []
    ship = emitter._ship
    emitter._ship = lambda batch: (round_trips.append(len(batch)), ship(batch))[1]  # type: ignore[method-assign]
    emitter.start()

    def emit(i: int) -> None:
        emitter.emit(PREDICTIONS, f"r-{i}", events_pb2.PredictionEvent(request_id=f"r-{i}"))

    def wait_sent(n: int, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and len(producer.sent) < n:
            time.sleep(0.01)
        assert len(producer.sent) == n

    emit(0)
    wait_sent(1, within=5)  # the first goes at once
    for i in range(1, 6):  # a trickle while the shipper waits
        emit(i)
        time.sleep(0.05)
    wait_sent(6, within=5)
    assert round_trips == [1, 5]
    emit(6)
    emit(7)
    started = time.monotonic()
    assert emitter.close(drain_timeout=5) == 0  # shipped now, not after the interval
    assert time.monotonic() - started < 0.9
    assert producer.sent == [f"r-{i}".encode() for i in range(8)] and sum(round_trips[2:]) == 2


class _HangingFuture:
    """A record kafka-python never completes (as during an outage, for some partitions' batches)."""

    def get(self, timeout: float | None = None):
        import time

        from kafka.errors import KafkaTimeoutError

        time.sleep(timeout or 0)
        raise KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")


class _OutageProducer(_Producer):
    """The first record of a round trip expires, the others never complete."""

    def __init__(self, first_fails: bool) -> None:
        super().__init__(1 << 20)
        self.first_fails, self.calls = first_fails, 0

    def send_raw(self, topic, key, value, headers):
        from kafka.errors import KafkaTimeoutError

        self.calls += 1
        if self.first_fails and self.calls == 1:
            return _Future(topic, KafkaTimeoutError("Expiring 1 record(s)"))
        return _HangingFuture()


def test_a_round_trip_waits_for_kafka_once_not_once_per_record(tmp_path: Path) -> None:
    """One deadline for the batch, and none once a record failed: a batch of 8 during an outage
    must not keep the shipper (and ``kafka_up``) blind for 8 × the acknowledgement timeout."""
    import time

    from prometheus_client import CollectorRegistry

    from driftloop.core.emitter import EventEmitter
    from driftloop.core.metrics import EventMetrics
    from driftloop.core.settings import KafkaSettings
    from driftloop.core.spool import SpooledEvent

    for first_fails, most in ((True, 0.5), (False, 1.5)):
        metrics = EventMetrics(CollectorRegistry(), "test")
        producer = _OutageProducer(first_fails)
        emitter = EventEmitter(KafkaSettings(), tmp_path / f"s-{first_fails}.db", 1 << 24, metrics,
                               ack_timeout_s=1.0, producer_factory=lambda p=producer: p)
        batch = [SpooledEvent(i, "t", f"k{i}".encode(), "s", b"v") for i in range(8)]
        started = time.monotonic()
        acked, rejected = emitter._ship(batch)
        assert time.monotonic() - started < most  # not 7 or 8 × 1 s
        assert acked == [] and rejected == []  # all of them stay spooled for the next try
        emitter.spool.close()
