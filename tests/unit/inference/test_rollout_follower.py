"""The inference replica's RolloutFollower over a fake consumer: what it applies, skips and refuses,
when it has caught up, and that it keeps retrying while Kafka is unreachable. (On a real broker:
tests/integration/inference/test_hot_swap.py and test_replicas.py.)"""

from __future__ import annotations

import asyncio
import threading
from collections import namedtuple
from pathlib import Path

from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from driftloop.core import codec
from driftloop.core.metrics import InferenceMetrics
from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.rollouts import RolloutFollower
from driftloop.v1 import events_pb2
from tests.unit.inference.test_adapters import MODULES, write_adapter

TP = TopicPartition(ADAPTER_ROLLOUTS.name, 0)
Record = namedtuple("Record", "key value headers offset")


def rollout(gen: int, stable: str, canary: str = "", weight: float = 0.0) -> Record:
    r = events_pb2.AdapterRollout(rollout_id=f"r{gen}", adapter_alias="qa", generation=gen, canary_weight=weight)
    r.stable.version, r.stable.path = stable, f"qa/{stable}"
    if canary:
        r.canary.version, r.canary.path = canary, f"qa/{canary}"
    value, headers = codec.encode(r)
    return Record(b"qa", value, headers, gen - 1)


class FakeConsumer:
    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.pos = 0
        self.closed = False

    def poll(self, timeout_ms: int = 0):
        batch, self.records = self.records, []
        self.pos += len(batch)
        return {TP: batch} if batch else {}

    def position(self, tp) -> int:
        return self.pos

    def close(self, autocommit: bool = True) -> None:
        self.closed = True


def follow(tmp_path: Path, records: list[Record], fail_first: int = 0):
    """Run a follower over ``records`` until it has caught up; returns (registry, metrics, connects)."""
    for v in ("v1", "v2"):
        write_adapter(tmp_path / "qa" / v)
    prom = CollectorRegistry()
    metrics = InferenceMetrics(prom, "m")
    attempts = []
    consumer = FakeConsumer(records)

    def connect():
        attempts.append(1)
        if len(attempts) <= fail_first:
            raise ConnectionError("broker down")
        return consumer, {TP: len(records)}

    async def main():
        async def noop(v) -> None: ...
        registry = AdapterRegistry(tmp_path, 8, MODULES, noop, noop)
        follower = RolloutFollower(connect, registry, asyncio.get_running_loop(), metrics, drain_timeout_s=1)
        follower.start()
        while not follower.caught_up.is_set():
            await asyncio.sleep(0.02)
        await asyncio.to_thread(follower.stop)
        await asyncio.sleep(0)  # let the unload of unrouted versions run
        return registry

    registry = asyncio.run(main())
    assert consumer.closed

    def applied(result: str) -> float:
        return prom.get_sample_value("driftloop_inference_rollouts_applied_total", {"result": result}) or 0.0

    return registry, applied, len(attempts)


def test_applies_the_latest_generation_and_skips_stale_ones(tmp_path: Path) -> None:
    registry, applied, _ = follow(tmp_path, [rollout(1, "v1"), rollout(2, "v1", "v2", 0.5), rollout(2, "v2")])
    route = registry.route("qa")
    assert (route.stable, route.canary, route.canary_weight, route.generation) == ("v1", "v2", 0.5, 2)
    assert applied("applied") == 2 and applied("stale") == 1


def test_a_record_that_breaks_the_rules_is_refused_and_the_rest_still_applies(tmp_path: Path) -> None:
    bad = rollout(1, "v1", "v1", 0.5)  # stable == canary
    garbage = Record(b"qa", b"\xffnot a rollout", [("schema", b"driftloop.v1.AdapterRollout")], 1)
    registry, applied, _ = follow(tmp_path, [bad, garbage, rollout(3, "v2")])
    assert registry.route("qa").stable == "v2"
    assert (applied("rejected"), applied("undecodable"), applied("applied")) == (1, 1, 1)


def test_keeps_retrying_while_kafka_is_unreachable(tmp_path: Path) -> None:
    registry, _, attempts = follow(tmp_path, [rollout(1, "v1")], fail_first=2)
    assert attempts == 3 and registry.route("qa").stable == "v1"


def test_stop_ends_the_retries_at_once(tmp_path: Path) -> None:
    def connect():
        raise ConnectionError("broker down")

    async def main():
        async def noop(v) -> None: ...
        registry = AdapterRegistry(tmp_path, 8, MODULES, noop, noop)
        f = RolloutFollower(connect, registry, asyncio.get_running_loop(), InferenceMetrics(CollectorRegistry(), "m"))
        f.start()
        await asyncio.sleep(0.2)
        t = threading.Thread(target=f.stop)
        t.start()
        await asyncio.to_thread(t.join, 5)
        return f

    f = asyncio.run(main())
    assert not f._thread.is_alive() and not f.caught_up.is_set()
