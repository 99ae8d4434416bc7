"""Follows the compacted adapter-rollouts topic so every replica serves the same versions.

The topic's latest record per alias is the desired state. A follower reads it from the beginning
at start-up (no consumer group: every replica reads everything), then keeps following. For each
record newer than what was applied (by ``generation``) it loads the named versions (validated like
any LoadAdapter), switches the route atomically, and drains and unloads versions no longer routed.
A tombstone removes the alias.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import tenacity
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from driftloop.core import codec, ids
from driftloop.core.metrics import InferenceMetrics
from driftloop.core.settings import KafkaSettings
from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.errors import InferenceError, InvalidRequest
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)


def check_rollout(r: events_pb2.AdapterRollout) -> None:
    """The rules a rollout record must follow before a replica acts on it (InvalidRequest otherwise)."""
    try:
        ids.ALIAS.check(r.adapter_alias)
        ids.VERSION.check(r.stable.version)
        ids.VERSION.check(r.canary.version, required=False)
    except ids.InvalidIdentifier as exc:
        raise InvalidRequest(f"rollout: {exc}") from None
    if r.canary.version and r.canary.version == r.stable.version:
        raise InvalidRequest(f"rollout of {r.adapter_alias}: stable and canary are both {r.stable.version}")
    if not 0.0 <= r.canary_weight <= 1.0:
        raise InvalidRequest(f"rollout of {r.adapter_alias}: canary_weight {r.canary_weight} outside [0, 1]")


# How long one record may take to apply (loading its adapters) before the follower gives up on it.
APPLY_TIMEOUT_S = 600.0


def rollout_consumer(kafka: KafkaSettings) -> tuple[KafkaConsumer, dict[TopicPartition, int]]:
    """A consumer of the whole rollout topic from its beginning (no group), and the end offsets at
    start: once its position reaches them the replica has caught up with the published state."""
    consumer = KafkaConsumer(
        **kafka.client_config(), client_id=f"{kafka.client_id}-rollouts",
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
    )
    partitions = consumer.partitions_for_topic(ADAPTER_ROLLOUTS.name) or set()
    tps = [TopicPartition(ADAPTER_ROLLOUTS.name, p) for p in sorted(partitions)]
    if not tps:
        consumer.close()
        raise RuntimeError(f"topic {ADAPTER_ROLLOUTS.name} not found")
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer, consumer.end_offsets(tps)


class RolloutFollower:
    """Applies rollout records on the server's event loop, from a thread that owns the consumer.

    ``connect`` returns a consumer and the end offsets to catch up to (:func:`rollout_consumer`);
    while Kafka is unreachable the follower keeps serving what is loaded and reconnects with backoff."""

    def __init__(
        self, connect: Callable[[], tuple[KafkaConsumer, dict[TopicPartition, int]]], registry: AdapterRegistry,
        loop: asyncio.AbstractEventLoop, metrics: InferenceMetrics, drain_timeout_s: float = 300.0,
    ) -> None:
        self._connect_once = connect
        self._registry = registry
        self._loop = loop
        self._m = metrics
        self._drain_timeout = drain_timeout_s
        self._applied: dict[str, int] = {}
        self._stop = threading.Event()
        self.caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _connect(self) -> tuple[KafkaConsumer, dict[TopicPartition, int]]:
        retrying = tenacity.Retrying(
            wait=tenacity.wait_exponential(multiplier=0.5, max=10.0), sleep=self._stop.wait,
            stop=tenacity.stop_when_event_set(self._stop),
            before_sleep=lambda rs: log.warning("rollout follower cannot reach Kafka (%s); retrying",
                                                rs.outcome.exception()))
        return retrying(self._connect_once)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                consumer, end = self._connect()
            except tenacity.RetryError:  # stopped while Kafka was unreachable
                return
            try:
                self._follow(consumer, end)
            except Exception:
                log.exception("rollout follower failed; reconnecting")
            finally:
                consumer.close(autocommit=False)

    def _follow(self, consumer: KafkaConsumer, end: dict[TopicPartition, int]) -> None:
        while not self._stop.is_set():
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self._apply_record(record)
            if not self.caught_up.is_set() and all(consumer.position(tp) >= off for tp, off in end.items()):
                self.caught_up.set()

    def _apply_record(self, record) -> None:
        alias = (record.key or b"").decode(errors="replace")
        if record.value is None:
            fut = asyncio.run_coroutine_threadsafe(self._remove_alias(alias), self._loop)
            self._result(fut, "removed")
            return
        try:
            rollout = codec.decode(record.value, record.headers, events_pb2.AdapterRollout)
        except codec.UndecodableRecord as exc:
            log.error("skipping undecodable rollout at offset %d: %s", record.offset, exc)
            self._m.rollouts_applied.labels("undecodable").inc()
            return
        if rollout.generation <= self._applied.get(rollout.adapter_alias, 0):
            self._m.rollouts_applied.labels("stale").inc()
            return
        fut = asyncio.run_coroutine_threadsafe(self.apply(rollout), self._loop)
        if self._result(fut, "applied"):
            self._applied[rollout.adapter_alias] = rollout.generation

    def _result(self, fut, label: str) -> bool:
        try:
            fut.result(timeout=APPLY_TIMEOUT_S)
        except InferenceError as exc:
            log.error("rollout rejected: %s", exc)
            self._m.rollouts_applied.labels("rejected").inc()
            return False
        except Exception:  # a record no rule foresaw: this record only, the follower goes on
            log.exception("rollout failed")
            self._m.rollouts_applied.labels("rejected").inc()
            return False
        self._m.rollouts_applied.labels(label).inc()
        return True

    async def apply(self, r: events_pb2.AdapterRollout) -> None:
        """Load what the rollout names, switch the route, then drain and unload the rest. A record
        that breaks the rules is refused before anything is loaded."""
        check_rollout(r)
        reg = self._registry
        alias = r.adapter_alias
        for ref in (r.stable, r.canary):
            if ref.version:
                await reg.load(alias, ref.version, ref.path, ref.sha256)
        weight = r.canary_weight if r.canary.version else 0.0
        reg.set_route(alias, r.stable.version, r.canary.version, weight, generation=r.generation)
        log.info("rollout %s applied: %s stable=%s canary=%s weight=%.2f gen=%d", r.rollout_id, alias,
                 r.stable.version, r.canary.version or "-", weight, r.generation)
        self._unload_unrouted(alias)

    async def _remove_alias(self, alias: str) -> None:
        self._registry.remove_route(alias)
        self._applied.pop(alias, None)
        self._unload_unrouted(alias)

    def _unload_unrouted(self, alias: str) -> None:
        for v in self._registry.versions(alias):
            if not self._registry.is_routed(v) and not v.draining:
                asyncio.ensure_future(self._unload(alias, v.version))

    async def _unload(self, alias: str, version: str) -> None:
        try:
            await self._registry.unload(alias, version, timeout=self._drain_timeout)
        except (InferenceError, TimeoutError) as exc:
            log.warning("could not unload %s@%s: %s", alias, version, exc)

