"""Kafka down: requests are still served, events wait in the on-disk spool, and after the broker
returns every event reaches the topic exactly once."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from driftloop.core.topics import PREDICTIONS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until, metric, scrape

pytestmark = pytest.mark.integration
N = 120


def test_broker_outage_loses_nothing(inference_server, kafka_broker, kafka_settings, unique) -> None:
    prefix = unique("outage")
    inf = inference_server.inference
    kafka_broker.stop()
    try:
        def call(i: int) -> str:
            r = inf.Generate(pb.GenerateRequest(request_id=f"{prefix}-{i}", prompt=f"is line {i} late",
                                                sampling=pb.SamplingParams(max_tokens=4)), timeout=60)
            return r.request_id

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            served = list(pool.map(call, range(N)))
        elapsed = time.monotonic() - t0
        assert len(served) == N
        samples = scrape(inference_server.metrics_url)
        assert metric(samples, "driftloop_events_spooled", service="inference") > 0
        deadline = time.monotonic() + 40  # the shipper notices at its next delivery timeout
        while metric(samples, "driftloop_kafka_up", service="inference") != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            samples = scrape(inference_server.metrics_url)
        assert metric(samples, "driftloop_kafka_up", service="inference") == 0
        print(f"{N} requests served with the broker down in {elapsed:.1f}s")
    finally:
        kafka_broker.start()

    wanted = {f"{prefix}-{i}" for i in range(N)}
    events = consume_until(kafka_settings, [PREDICTIONS], {PREDICTIONS.name: events_pb2.PredictionEvent},
                           done=lambda got: {e.request_id for e in got} >= wanted,
                           keep=lambda e: e.request_id in wanted, timeout=120)
    counts = Counter(e.request_id for e in events)
    assert set(counts) == wanted, f"missing {len(wanted - set(counts))} events"
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        samples = scrape(inference_server.metrics_url)
        if metric(samples, "driftloop_events_spooled", service="inference") == 0:
            break
        time.sleep(0.5)
    assert metric(samples, "driftloop_events_spooled", service="inference") == 0
    assert metric(samples, "driftloop_kafka_up", service="inference") == 1
    assert metric(samples, "driftloop_events_dropped_total") == 0
