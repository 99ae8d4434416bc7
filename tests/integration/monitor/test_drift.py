"""2,000 in-distribution events, then 1,000 shifted ones, through the real broker and the real
monitor process: no trigger before the shift, one within 300 events after it, exactly one
RetrainTrigger, and the scraped metrics show the statistic crossing its threshold.

Before the shift a single window may drift by chance (each MMD test is at p < 0.01: about 1 %
of unchanged windows with the default scipy backend, see the README's false alarms): that is
counted and printed, not failed on. What must not happen is a trigger, which takes
SUSTAINED_WINDOWS (3) drifted windows in a row."""

from __future__ import annotations

import random
import time

import pytest

from driftloop.core.kafka import EventProducer
from driftloop.core.topics import FEEDBACK, PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.demo.traffic import prediction
from driftloop.v1 import events_pb2
from tests.integration.helpers import consume_until, metric, scrape, start_group_at_end

pytestmark = pytest.mark.integration
STEP = 0.01  # synthetic seconds between events: event time → event index


def _produce(producer, rng, model, start, n, shifted, t0):
    for i in range(start, start + n):
        producer.send(PREDICTIONS, f"{model}-{i}", prediction(rng, shifted, model=model,
                                                             request_id=f"{model}-{i}", t=t0 + i * STEP))
    producer.flush(60)


def _wait_processed(url, model, n, timeout=400):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = scrape(url)
        if metric(samples, "driftloop_monitor_predictions_total", model=model) >= n:
            return samples
        time.sleep(0.5)
    raise AssertionError(f"monitor processed {metric(scrape(url), 'driftloop_monitor_predictions_total', model=model)}"
                         f" of {n}")


def test_shift_detected_once_without_false_alarms(kafka_settings, monitor_factory, unique, figure) -> None:
    model = unique("drift-model")
    rng = random.Random(7)
    t0 = time.time() - 3600
    group = unique("monitor")
    start_group_at_end(kafka_settings, group, [PREDICTIONS, FEEDBACK])
    monitor = monitor_factory(group)
    producer = EventProducer(kafka_settings)
    _produce(producer, rng, model, 0, 2000, False, t0)
    before = _wait_processed(monitor.metrics_url, model, 2000)
    assert metric(before, "driftloop_monitor_retrain_triggers_total", model=model) == 0
    assert metric(before, "driftloop_monitor_episode_active", model=model) == 0
    assert metric(before, "driftloop_monitor_reference_samples", model=model) == 500
    tested = {r: metric(before, "driftloop_monitor_drift_tests_total", model=model, detector="input_embedding",
                        result=r) for r in ("drift", "no_drift")}
    assert sum(tested.values()) == 15  # (2,000 - 500 reference) / 100 per window
    false_alarm_windows = tested["drift"]

    # Shifted traffic in chunks of 50: the first chunk after which a trigger exists gives the delay
    # (the monitor reads three partitions, so events are counted as processed, not by event time).
    delay = None
    for start in range(2000, 3000, 50):
        _produce(producer, rng, model, start, 50, True, t0)
        samples = _wait_processed(monitor.metrics_url, model, start + 50)
        if delay is None and metric(samples, "driftloop_monitor_retrain_triggers_total", model=model) >= 1:
            delay = start + 50 - 2000
    after = _wait_processed(monitor.metrics_url, model, 3000)
    producer.close()
    print(f"detection delay: ≤ {delay} events after the shift (50-event resolution)")
    figure(f"drift: no trigger in 2,000 in-distribution events ({false_alarm_windows:.0f} of 15 windows drifted "
           f"by chance, expected ~0.15); detection delay <= {delay} events (needs <= 300)")
    assert delay is not None and delay <= 300
    stat = metric(after, "driftloop_monitor_drift_statistic", model=model, detector="input_embedding")
    threshold = metric(after, "driftloop_monitor_drift_statistic_threshold", model=model, detector="input_embedding")
    assert stat > threshold
    assert metric(after, "driftloop_monitor_drift_p_value", model=model, detector="input_embedding") < \
        metric(after, "driftloop_monitor_drift_p_value_threshold", model=model, detector="input_embedding")
    assert metric(after, "driftloop_monitor_retrain_triggers_total", model=model) == 1
    assert metric(after, "driftloop_monitor_episode_active", model=model) == 1

    triggers = consume_until(kafka_settings, [RETRAIN_TRIGGERS], {RETRAIN_TRIGGERS.name: events_pb2.RetrainTrigger},
                             done=lambda got: len(got) >= 1, keep=lambda e: e.model == model, timeout=30)
    assert len(triggers) == 1
    trig = triggers[0]
    print(f"evidence: {[(e.signal, round(e.statistic, 4), round(e.threshold, 4)) for e in trig.evidence]}")
    assert "input_embedding" in trig.reason and trig.dedupe_key and trig.adapter_alias == "transit-qa"
    signals = {e.signal: e for e in trig.evidence}
    assert signals["input_embedding"].detected and signals["input_embedding"].windows_over >= 3
    assert signals["input_embedding"].statistic > signals["input_embedding"].threshold
    assert trig.prediction_count > 0 and trig.window_start.seconds > 0
