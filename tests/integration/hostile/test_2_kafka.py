"""Forged and broken records on the loop's own topics: each is dead-lettered with its reason (or
refused by the replica), the consumer goes on, nothing trains, nothing outside the service's own
directories is touched."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import pytest

from driftloop.core.kafka import EventProducer
from driftloop.core.topics import ADAPTER_ROLLOUTS, DLQ, PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until, metric, scrape
from tests.integration.hostile.test_1_grpc import assert_healthy
from tests.integration.inference.conftest import ADMIN_MD

pytestmark = pytest.mark.integration


def _prediction(request_id: str, t: float, alias: str = "", version: str = "", model: str = "tiny-llama"):
    e = events_pb2.PredictionEvent(request_id=request_id, model=model, adapter_alias=alias, adapter_version=version,
                                   prompt="Q: forged\nA:", completion="x", latency_seconds=0.01)
    e.request_time.FromNanoseconds(int(t * 1e9))
    return e


def _trigger(trigger_id: str, alias: str, age_s: float = 0.0, **fields) -> events_pb2.RetrainTrigger:
    t = events_pb2.RetrainTrigger(trigger_id=trigger_id, dedupe_key=f"hostile/{uuid.uuid4().hex}", model="tiny-llama",
                                  adapter_alias=alias, reason="forged", **fields)
    t.created_time.FromSeconds(int(time.time() - age_s))
    t.window_start.FromSeconds(int(time.time() - age_s - 60))
    return t


def _letters(kafka_settings, keep, n: int) -> list[events_pb2.DeadLetter]:
    return consume_until(kafka_settings, [DLQ], {DLQ.name: events_pb2.DeadLetter},
                         done=lambda got: len(got) >= n, keep=keep, timeout=90)


def test_forged_predictions_are_dead_lettered_and_the_monitor_goes_on(loop, kafka_settings) -> None:
    now = time.time()
    forged = {
        "far-future timestamp": _prediction(f"{loop.run}-future", now + 10 * 365 * 86400),
        "timestamp before 1971": _prediction(f"{loop.run}-past", 1.0),
        "alias with a path": _prediction(f"{loop.run}-path", now, alias="../../etc", version="v1"),
        "1 MiB alias": _prediction(f"{loop.run}-huge", now, alias="a" * (1 << 19), version="v1"),
        "request id with spaces": _prediction(f"{loop.run} spaces", now),
        "model with a newline": _prediction(f"{loop.run}-model", now, model="m\nFORGED"),
    }
    producer = EventProducer(kafka_settings, max_request_size=4 << 20)
    for case, ev in forged.items():
        loop.case(f"predictions topic: {case}")
        producer.send_and_wait(PREDICTIONS, ev.request_id[:64], ev)
    producer.close()
    letters = _letters(kafka_settings, lambda d: d.origin_topic == PREDICTIONS.name and loop.run.encode() in d.key,
                       len(forged))
    types = sorted(d.error_type for d in letters)
    assert types == sorted(["invalid_time", "invalid_time", "invalid_identifier", "invalid_identifier",
                            "invalid_identifier", "invalid_identifier"]), types
    assert loop.monitor.proc.poll() is None, loop.monitor.log_tail(30)


def test_streams_are_bounded(loop, kafka_settings) -> None:
    """Even forged records for many served-looking aliases never make more than MAX_STREAMS streams."""
    producer = EventProducer(kafka_settings)
    before = loop.monitor_metric("driftloop_monitor_events_total", topic=PREDICTIONS.name, result="stream_limit")
    for i in range(8):
        loop.case("predictions topic: a new alias per record")
        ev = _prediction(f"{loop.run}-streams-{i}", time.time(), alias=f"{loop.run}-alias-{i}", version="v1")
        producer.send_and_wait(PREDICTIONS, ev.request_id, ev)
    producer.close()
    loop.wait_monitor("driftloop_monitor_events_total", before + 1, topic=PREDICTIONS.name, result="stream_limit")
    streams = {k for k in scrape(loop.monitor_url) if k.startswith("driftloop_monitor_reference_samples")}
    assert len(streams) <= 4, streams


def test_forged_triggers_never_train(loop, kafka_settings) -> None:
    """A crafted trigger id (a path), an unknown alias, a stale trigger and forged follow-up fields are
    dead-lettered with the reason, before any data is collected; nothing appears outside the adapter
    root or the state dir."""
    crafted = "../../../../../../tmp/driftloop-pwned-" + uuid.uuid4().hex[:6]
    cases = {
        "trigger id that is a path": (_trigger(crafted, "transit-qa"), "invalid_identifier"),
        "trigger id of 512 KiB": (_trigger("t" * (1 << 19), "transit-qa"), "invalid_identifier"),
        "alias that is a path": (_trigger(uuid.uuid4().hex, "../.."), "invalid_identifier"),
        "unknown alias": (_trigger(uuid.uuid4().hex, f"{loop.run}-never-served"), "unknown_alias"),
        "trigger two days old": (_trigger(uuid.uuid4().hex, f"{loop.run}-never-served", age_s=2 * 86400), "stale"),
        # the fields a retrainer's own follow-up attempt sets (retrainer/episodes.py), forged
        "attempt 99 of an episode": (_trigger(uuid.uuid4().hex, "transit-qa", attempt=99), "invalid"),
        "a trillion corrections wanted": (_trigger(uuid.uuid4().hex, "transit-qa", min_corrections=10**12), "invalid"),
        "parent trigger id that is a path": (_trigger(uuid.uuid4().hex, "transit-qa", parent_trigger_id=crafted),
                                             "invalid_identifier"),
    }
    before = set(loop.adapter_root.parent.rglob("*"))
    producer = EventProducer(kafka_settings, max_request_size=4 << 20)
    keys = []
    for case, (trigger, _) in cases.items():
        loop.case(f"triggers topic: {case}")
        key = f"{loop.run}-{len(keys)}"
        keys.append(key.encode())
        producer.send_and_wait(RETRAIN_TRIGGERS, key, trigger)
    producer.close()
    letters = _letters(kafka_settings, lambda d: d.origin_topic == RETRAIN_TRIGGERS.name and d.key in keys, len(keys))
    by_key = {d.key: d.error_type for d in letters}
    assert [by_key.get(k) for k in keys] == [reason for _, reason in cases.values()], by_key
    assert all(len(d.reason) < 300 for d in letters)
    samples = scrape(loop.retrainer_url)
    assert metric(samples, "driftloop_retrainer_triggers_total", result="accepted") == 0
    assert metric(samples, "driftloop_retrainer_stage_duration_seconds_count") == 0  # no stage ever ran
    after = set(loop.adapter_root.parent.rglob("*"))
    assert after == before, sorted(map(str, after ^ before))[:5]
    assert not list(Path("/tmp").glob("driftloop-pwned-*")) and not list(loop.state.rglob("*pwned*"))
    assert (loop.outside / "sentinel").read_text() == "untouched"
    assert loop.retrainer.proc.poll() is None, loop.retrainer.log_tail(30)


def test_forged_rollouts_are_refused_by_the_replica(loop, inference_server, kafka_settings) -> None:
    alias = f"{loop.run}-rollout"
    before = metric(scrape(inference_server.metrics_url), "driftloop_inference_rollouts_applied_total",
                    result="rejected")
    producer = EventProducer(kafka_settings)
    cases = {
        "stable = canary": ("v1", "transit-qa/v1", "v1", "transit-qa/v1"),
        "path outside the root": ("v1", "../outside-the-adapter-root", "", ""),
        "version that is a path": ("../../x", "transit-qa/v1", "", ""),
    }
    for i, (case, (stable, path, canary, canary_path)) in enumerate(cases.items(), 1):
        loop.case(f"rollouts topic: {case}")
        r = events_pb2.AdapterRollout(adapter_alias=alias, rollout_id=f"forged-{i}", generation=i, action="manual",
                                      canary_weight=0.5 if canary else 0.0)
        r.stable.version, r.stable.path = stable, path
        if canary:
            r.canary.version, r.canary.path = canary, canary_path
        producer.send_and_wait(ADAPTER_ROLLOUTS, alias, r)
    producer.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = metric(scrape(inference_server.metrics_url), "driftloop_inference_rollouts_applied_total",
                     result="rejected")
        if got >= before + len(cases):
            break
        time.sleep(0.5)
    assert got >= before + len(cases), got
    listed = inference_server.admin.ListAdapters(pb.ListAdaptersRequest(adapter_alias=alias), metadata=ADMIN_MD,
                                                 timeout=10)
    assert not listed.routes and not listed.versions
    with pytest.raises(grpc.RpcError) as info:
        inference_server.inference.Generate(pb.GenerateRequest(prompt="x", adapter_alias=alias), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert_healthy(inference_server)
