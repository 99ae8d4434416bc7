"""Every replica follows the compacted adapter-rollouts topic and converges to the same versions."""

from __future__ import annotations

import time

import pytest

from driftloop.core.kafka import EventProducer
from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import metric, scrape
from tests.integration.inference.conftest import ADMIN_MD, inference_env, start_server

pytestmark = pytest.mark.integration


def _state(server, alias: str) -> tuple:
    listed = server.admin.ListAdapters(pb.ListAdaptersRequest(adapter_alias=alias), metadata=ADMIN_MD, timeout=10)
    routes = tuple((r.stable_version, r.canary_version, round(r.canary_weight, 3)) for r in listed.routes)
    return routes, tuple(sorted(v.version for v in listed.versions))


def _wait_for(servers, alias: str, expected: tuple, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [_state(s, alias) for s in servers]
        if all(st == expected for st in states):
            return
        time.sleep(0.3)
    raise AssertionError(f"replicas did not converge to {expected}: {states}")


def _rollout(alias, generation, stable, canary="", weight=0.0, action="manual"):
    r = events_pb2.AdapterRollout(adapter_alias=alias, rollout_id=f"{alias}-{generation}", generation=generation,
                                  canary_weight=weight, action=action)
    r.stable.version, r.stable.path = stable, f"transit-qa/{stable}"
    if canary:
        r.canary.version, r.canary.path = canary, f"transit-qa/{canary}"
    return r


def test_two_replicas_converge(inference_server, tiny_model, kafka_broker, kafka_settings, tmp_path, unique) -> None:
    alias = unique("fleet")
    producer = EventProducer(kafka_settings)
    producer.send_and_wait(ADAPTER_ROLLOUTS, alias, _rollout(alias, 1, "v1"))
    # The second replica starts after the first rollout: it must catch up from the compacted topic.
    replica_b = start_server("replica-b", inference_env(tiny_model, kafka_broker, tmp_path,
                                                        DRIFTLOOP_INFERENCE_REPLICA="replica-b"), tmp_path / "b.log")
    servers = [inference_server, replica_b]
    try:
        _wait_for(servers, alias, ((("v1", "", 0.0),), ("v1",)))
        producer.send_and_wait(ADAPTER_ROLLOUTS, alias, _rollout(alias, 2, "v2", "v3", 0.5, "canary"))
        _wait_for(servers, alias, ((("v2", "v3", 0.5),), ("v2", "v3")))
        # A stale record (older generation) is ignored.
        producer.send_and_wait(ADAPTER_ROLLOUTS, alias, _rollout(alias, 1, "v4"))
        time.sleep(2)
        _wait_for(servers, alias, ((("v2", "v3", 0.5),), ("v2", "v3")))
        # Both replicas route the same request id to the same version.
        for i in range(10):
            versions = {s.inference.Generate(pb.GenerateRequest(
                request_id=f"{alias}-{i}", prompt="the bus", adapter_alias=alias,
                sampling=pb.SamplingParams(max_tokens=2)), timeout=60).adapter_version for s in servers}
            assert len(versions) == 1
        producer.send_and_wait(ADAPTER_ROLLOUTS, alias, _rollout(alias, 3, "v3", action="promote"))
        _wait_for(servers, alias, ((("v3", "", 0.0),), ("v3",)))
        producer.send_and_wait(ADAPTER_ROLLOUTS, alias, None)  # tombstone: the alias goes away
        _wait_for(servers, alias, ((), ()))
        samples = scrape(replica_b.metrics_url)
        assert metric(samples, "driftloop_inference_rollouts_applied_total", result="applied") >= 3
    finally:
        producer.close()
        replica_b.channel.close()
        replica_b.process.stop()
