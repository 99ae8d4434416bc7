"""Produce with the project's codec, consume with a consumer group, commit, restart: through a real
broker."""

from __future__ import annotations

import time

import pytest

from driftloop.core import codec
from driftloop.core.kafka import DeadLetterSink, Delivered, EventConsumer, EventProducer, InvalidEvent
from driftloop.core.topics import DLQ, PREDICTIONS
from driftloop.v1 import events_pb2

pytestmark = pytest.mark.integration


def _drain(consumer: EventConsumer, handler, until, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        consumer.process(handler, timeout_ms=500)
    assert until(), "timed out waiting for records"


def test_produce_consume_commit_and_restart(kafka_settings, unique) -> None:
    rid = unique("req")
    group = unique("group")
    producer = EventProducer(kafka_settings)
    delivered: list = []
    event = events_pb2.PredictionEvent(request_id=rid, prompt="Where does the 5 stop?", completion="Main St.")
    producer.send(PREDICTIONS, rid, event, on_delivery=lambda md, err: delivered.append((md, err)))
    producer.flush(timeout=30)
    assert len(delivered) == 1 and delivered[0][1] is None, delivered
    assert delivered[0][0].topic == PREDICTIONS.name

    seen: list[events_pb2.PredictionEvent] = []

    def handle(d: Delivered[events_pb2.PredictionEvent]) -> None:
        if d.event.request_id.startswith(rid):
            seen.append(d.event)

    consumer = EventConsumer(kafka_settings, [PREDICTIONS], group, events_pb2.PredictionEvent)
    try:
        _drain(consumer, handle, lambda: len(seen) >= 1)
    finally:
        consumer.close()
    assert seen[0] == event

    # A restarted member of the same group resumes after the committed offset: nothing again.
    again: list = []
    restarted = EventConsumer(kafka_settings, [PREDICTIONS], group, events_pb2.PredictionEvent)
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            restarted.process(
                lambda d: again.append(d) if d.event.request_id == rid else None, timeout_ms=500
            )
        assigned = restarted.raw.assignment()
    finally:
        restarted.close()
    assert assigned, "the restarted consumer never joined the group"
    assert again == []
    producer.close()


def test_poison_records_go_to_the_dlq_and_the_consumer_goes_on(kafka_settings, unique) -> None:
    rid = unique("poison")
    group = unique("group")
    producer = EventProducer(kafka_settings)
    good_before = events_pb2.PredictionEvent(request_id=f"{rid}-good-1")
    good_after = events_pb2.PredictionEvent(request_id=f"{rid}-good-2")
    raw = producer._producer  # raw sends to forge records the codec would never write
    producer.send(PREDICTIONS, rid, good_before)
    raw.send(PREDICTIONS.name, key=rid.encode(), value=b"\x8f\x01random bytes")  # no schema header
    raw.send(PREDICTIONS.name, key=rid.encode(), value=b"\xff\xff\xff\xff",
             headers=[("schema", b"driftloop.v1.PredictionEvent")])
    wrong, headers = codec.encode(events_pb2.FeedbackEvent(request_id=rid))
    raw.send(PREDICTIONS.name, key=rid.encode(), value=wrong, headers=headers)
    producer.send(PREDICTIONS, rid, events_pb2.PredictionEvent(request_id=""))  # fails validation
    producer.send(PREDICTIONS, rid, events_pb2.PredictionEvent(request_id=f"{rid}-boom"))  # the handler raises
    producer.send(PREDICTIONS, rid, good_after)
    producer.flush(timeout=30)

    ok: list[str] = []

    def handle(d: Delivered[events_pb2.PredictionEvent]) -> None:
        if not d.event.request_id:
            raise InvalidEvent("missing request_id", "missing_field")
        if d.event.request_id == f"{rid}-boom":
            raise RuntimeError("a bug this record triggers")  # dead-lettered too: no crash loop
        if d.event.request_id.startswith(rid):
            ok.append(d.event.request_id)

    sink = DeadLetterSink(producer, group)
    consumer = EventConsumer(kafka_settings, [PREDICTIONS], group, events_pb2.PredictionEvent,
                             dead_letters=sink)
    try:
        _drain(consumer, handle, lambda: len(ok) >= 2)
    finally:
        consumer.close()
    assert ok == [f"{rid}-good-1", f"{rid}-good-2"]

    letters: list[events_pb2.DeadLetter] = []
    dlq = EventConsumer(kafka_settings, [DLQ], unique("dlq-reader"), events_pb2.DeadLetter)
    try:
        _drain(dlq, lambda d: letters.append(d.event) if d.event.consumer_group == group else None,
               lambda: len(letters) >= 5)
    finally:
        dlq.close()
    assert sorted(x.error_type for x in letters) == sorted(
        ["missing_schema", "undecodable", "unexpected_schema", "missing_field", "handler_error"]
    )
    assert "RuntimeError: a bug this record triggers" in next(x.reason for x in letters
                                                               if x.error_type == "handler_error")
    for letter in letters:
        assert letter.origin_topic == PREDICTIONS.name
        assert letter.origin_offset >= 0 and letter.reason
    producer.close()
