"""Poison records go to the DLQ with reasons while every valid event is counted; a monitor killed
mid-stream resumes from its committed offsets with its detector state (nothing counted twice)."""

from __future__ import annotations

import json
import random
import sqlite3
import time

import pytest

from driftloop.core import codec
from driftloop.core.kafka import EventProducer
from driftloop.core.topics import DLQ, FEEDBACK, PREDICTIONS
from driftloop.demo.traffic import feedback, prediction
from driftloop.v1 import events_pb2
from tests.integration.helpers import consume_until, metric, scrape, start_group_at_end

pytestmark = pytest.mark.integration


def _wait(url: str, name: str, value: float, timeout: float = 300, **labels: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            samples = scrape(url)
        except OSError:
            samples = {}
        if metric(samples, name, **labels) >= value:
            return samples
        time.sleep(0.3)
    raise AssertionError(f"{name}{labels} did not reach {value}")


def test_poison_records_dead_lettered_and_nothing_valid_lost(kafka_settings, monitor_factory, unique) -> None:
    model = unique("poison-model")
    group = unique("monitor")
    rng = random.Random(3)
    start_group_at_end(kafka_settings, group, [PREDICTIONS, FEEDBACK])
    producer = EventProducer(kafka_settings)
    valid = 0
    poison: list[str] = []
    for i in range(300):
        if i % 30 == 5:
            producer.send_raw(PREDICTIONS.name, f"{model}-junk-{i}".encode(), bytes(rng.randbytes(40)), [])
            poison.append("missing_schema")
        elif i % 30 == 15:
            value, headers = codec.encode(events_pb2.FeedbackEvent(request_id="x", feedback_id="y", rating=1))
            producer.send_raw(PREDICTIONS.name, f"{model}-wrong-{i}".encode(), value, headers)
            poison.append("unexpected_schema")
        elif i % 30 == 25:
            bad = prediction(rng, False, model=model)
            bad.request_id = ""
            producer.send(PREDICTIONS, f"{model}-noid-{i}", bad)
            poison.append("missing_field")
        else:
            ev = prediction(rng, False, model=model, request_id=f"{model}-{i}")
            producer.send(PREDICTIONS, ev.request_id, ev)
            valid += 1
            if i % 4 == 0:
                producer.send(FEEDBACK, ev.request_id, feedback(rng, ev.request_id, negative=i % 8 == 0))
    for source in ("retrainer-gate", "evaluation"):  # not traffic: ignored, never analysed
        ev = prediction(rng, False, model=model, request_id=f"{model}-{source}")
        ev.tags["source"] = source
        producer.send(PREDICTIONS, ev.request_id, ev)
    producer.send_raw(FEEDBACK.name, b"junk", b"\xff\xfe\xfd", [("schema", b"driftloop.v1.FeedbackEvent")])
    poison.append("undecodable")
    producer.flush(60)
    monitor = monitor_factory(group)
    samples = _wait(monitor.metrics_url, "driftloop_monitor_predictions_total", valid, model=model)
    assert metric(samples, "driftloop_monitor_predictions_total", model=model) == valid
    assert metric(samples, "driftloop_monitor_feedback_total", model=model) > 0
    _wait(monitor.metrics_url, "driftloop_monitor_events_total", 2, result="ignored")

    letters = consume_until(kafka_settings, [DLQ], {DLQ.name: events_pb2.DeadLetter},
                            done=lambda got: len(got) >= len(poison), keep=lambda e: e.consumer_group == group,
                            timeout=60)
    assert sorted(e.error_type for e in letters) == sorted(poison)
    for e in letters:
        assert e.reason and e.origin_topic in (PREDICTIONS.name, FEEDBACK.name) and e.origin_offset >= 0
    assert metric(scrape(monitor.metrics_url), "driftloop_monitor_dead_letters_total") >= len(poison)

    # The consumer kept going: a valid event produced after the poison is processed too.
    late = prediction(rng, False, model=model, request_id=f"{model}-late")
    producer.send_and_wait(PREDICTIONS, late.request_id, late)
    _wait(monitor.metrics_url, "driftloop_monitor_predictions_total", valid + 1, model=model)
    producer.close()


def test_restart_resumes_from_committed_offsets_with_state(kafka_settings, monitor_factory, tmp_path, unique) -> None:
    model = unique("restart-model")
    group = unique("monitor")
    state = tmp_path / "monitor-state"
    rng = random.Random(5)
    start_group_at_end(kafka_settings, group, [PREDICTIONS, FEEDBACK])
    producer = EventProducer(kafka_settings)
    total = 700
    for i in range(total):
        ev = prediction(rng, False, model=model, request_id=f"{model}-{i}")
        producer.send(PREDICTIONS, ev.request_id, ev)
    producer.flush(60)
    first = monitor_factory(group, state=state)
    _wait(first.metrics_url, "driftloop_monitor_predictions_total", 150, model=model)
    first.process.kill()  # SIGKILL mid-stream: no clean shutdown

    second = monitor_factory(group, state=state)
    _wait(second.metrics_url, "driftloop_monitor_reference_samples", 500, model=model)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        samples = scrape(second.metrics_url)
        if metric(samples, "driftloop_monitor_window_samples", model=model, detector="prompt_length") >= 100:
            break
        time.sleep(0.3)
    second.process.stop()
    producer.close()

    db = sqlite3.connect(state / "monitor.sqlite")
    (joined,) = db.execute("SELECT COUNT(*) FROM joins WHERE request_id LIKE ?", (f"{model}-%",)).fetchone()
    meta = json.loads(db.execute("SELECT meta FROM streams WHERE key = ?", (f"{model}\x1ftransit-qa",)).fetchone()[0])
    db.close()
    assert joined == total  # every event remembered once
    # 500 reference + 2 windows of 100: exactly the 700 events, none twice, none lost.
    assert meta["windows_tested"] == 2 and meta["window"] == []


def test_promotion_rebuilds_the_alias_reference(kafka_settings, monitor_factory, unique) -> None:
    """A new version promoted on the rollouts topic makes the monitor rebuild that alias's reference
    from fresh traffic."""
    from driftloop.core.topics import ADAPTER_ROLLOUTS

    model, alias = unique("promo-model"), unique("promo-alias")
    group = unique("monitor")
    start_group_at_end(kafka_settings, group, [PREDICTIONS, FEEDBACK])
    rng = random.Random(9)
    producer = EventProducer(kafka_settings)
    for i in range(300):
        ev = prediction(rng, False, model=model, alias=alias, request_id=f"{model}-{i}")
        producer.send(PREDICTIONS, ev.request_id, ev)
    producer.flush(60)
    monitor = monitor_factory(group)
    _wait(monitor.metrics_url, "driftloop_monitor_reference_samples", 300, model=model)
    rollout = events_pb2.AdapterRollout(adapter_alias=alias, rollout_id="r1", generation=1, action="promote")
    rollout.stable.version, rollout.stable.path = "v2", f"{alias}/v2"
    producer.send_and_wait(ADAPTER_ROLLOUTS, alias, rollout)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if metric(scrape(monitor.metrics_url), "driftloop_monitor_reference_samples", model=model) == 0:
            break
        time.sleep(0.3)
    assert metric(scrape(monitor.metrics_url), "driftloop_monitor_reference_samples", model=model) == 0
    for i in range(300, 350):  # fresh traffic after the promotion forms the new reference
        ev = prediction(rng, False, model=model, alias=alias, version="v2", request_id=f"{model}-{i}")
        producer.send(PREDICTIONS, ev.request_id, ev)
    producer.flush(60)
    _wait(monitor.metrics_url, "driftloop_monitor_reference_samples", 50, model=model)
    producer.close()
