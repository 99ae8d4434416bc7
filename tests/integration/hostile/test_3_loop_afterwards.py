"""After every hostile case: the loop still works. Normal events reach Kafka once each and in order,
the monitor's counts are exact, client mistakes never counted as errors, no trigger was raised, no
service crashed and nothing outside the services' own directories changed."""

from __future__ import annotations

import time

import pytest

from driftloop.core.topics import PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until, metric, scrape

pytestmark = pytest.mark.integration
N = 20


def _settled(loop, name: str, timeout: float = 120, **labels: str) -> float:
    """The metric once the monitor has caught up (no lag, value unchanged for 3 s)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        samples = scrape(loop.monitor_url)
        value = metric(samples, name, **labels)
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= 3 and metric(samples, "driftloop_monitor_consumer_lag") == 0:
            return value
        time.sleep(0.5)
    raise AssertionError(f"the monitor did not settle: {name} = {last}")


def _read(kafka_settings, wanted: set[str], timeout: float = 90) -> list[tuple[int, int, events_pb2.PredictionEvent]]:
    """(partition, offset, event) of the wanted predictions, reading the topic from the start."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    from driftloop.core import codec

    consumer = KafkaConsumer(**kafka_settings.client_config(), group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(PREDICTIONS.name, p) for p in sorted(consumer.partitions_for_topic(PREDICTIONS.name))]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: list[tuple[int, int, events_pb2.PredictionEvent]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len({e.request_id for _, _, e in out}) < len(wanted):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    if r.key is None or r.key.decode(errors="replace") not in wanted:
                        continue
                    out.append((r.partition, r.offset, codec.decode(r.value, r.headers, events_pb2.PredictionEvent)))
        for records in consumer.poll(timeout_ms=1000).values():  # one more read: duplicates would show
            out += [(r.partition, r.offset, codec.decode(r.value, r.headers, events_pb2.PredictionEvent))
                    for r in records if r.key is not None and r.key.decode(errors="replace") in wanted]
    finally:
        consumer.close(autocommit=False)
    return out


def test_the_loop_still_works_afterwards(loop, inference_server, kafka_settings, figure) -> None:
    stream = {"model": "tiny-llama", "adapter_alias": ""}
    ok = "driftloop_monitor_predictions_total"
    before = _settled(loop, ok, **stream, outcome="ok")  # what the earlier cases sent, all processed
    ids = [f"{loop.run}-after-{i:02d}" for i in range(N)]
    for rid in ids:  # one at a time: the order they were answered in is the order to find on Kafka
        inference_server.inference.Generate(pb.GenerateRequest(prompt="When does the last bus leave?", request_id=rid),
                                            timeout=60)
    records = _read(kafka_settings, set(ids))
    got = [e.request_id for _, _, e in records]
    assert sorted(got) == ids, f"{len(got)} of {N} events, duplicates: {len(got) - len(set(got))}"
    assert all(not e.error_code and not e.truncated_fields for _, _, e in records)
    for partition in {p for p, _, _ in records}:  # in order: within a partition, offsets follow the send order
        in_partition = [e.request_id for p, _, e in sorted(records, key=lambda r: r[1]) if p == partition]
        assert in_partition == sorted(in_partition), in_partition

    # The monitor counts each exactly once, and none of the client-caused failures as errors.
    loop.wait_monitor(ok, before + N, **stream, outcome="ok")
    time.sleep(3)
    samples = scrape(loop.monitor_url)
    assert metric(samples, ok, **stream, outcome="ok") == before + N
    assert metric(samples, ok, **stream, outcome="error") == 0
    assert metric(samples, "driftloop_monitor_rate", **stream, detector="error_rate") == 0
    assert metric(samples, "driftloop_monitor_events_total", topic=PREDICTIONS.name, result="client_error") > 0
    assert metric(samples, "driftloop_monitor_events_total", topic=PREDICTIONS.name, result="ignored") >= 1
    assert metric(samples, "driftloop_monitor_retrain_triggers_total") == 0
    triggers = consume_until(kafka_settings, [RETRAIN_TRIGGERS], {RETRAIN_TRIGGERS.name: events_pb2.RetrainTrigger},
                             done=lambda got: False, timeout=5,
                             keep=lambda t: t.model == "tiny-llama" and not t.dedupe_key.startswith("hostile/")
                             and t.created_time.seconds >= time.time() - 3600)  # none but the forged ones
    assert triggers == []

    # Nothing waits in the spool, nothing was refused by Kafka, and every service is up.
    inf = scrape(inference_server.metrics_url)
    assert metric(inf, "driftloop_events_spooled") == 0 and metric(inf, "driftloop_kafka_up") == 1
    assert metric(inf, "driftloop_events_rejected_total") == 0
    assert metric(inf, "driftloop_events_dropped_total") == 0
    crashed = [p.name for p in (inference_server.process, loop.monitor, loop.retrainer) if p.proc.poll() is not None]
    assert crashed == []
    assert (loop.outside / "sentinel").read_text() == "untouched"
    line = (f"hostile-input suite: {len(loop.cases)} cases tried, crashes {len(crashed)}, "
            f"events lost {N - len(set(got))} of {N} afterwards, triggers raised {len(triggers)}")
    print(line)
    figure(line)
