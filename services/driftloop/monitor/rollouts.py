"""The monitor's follower of the adapter-rollouts topic: when a promotion changes an alias's
stable version, that alias's streams rebuild their reference from fresh traffic.

The consumer has no group: it is assigned every partition and resumes from the offsets in the
state file (from the beginning the first time), so the generations it applied and the streams it
reset are durable together with its offsets (one checkpoint per poll).
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from driftloop.core import codec
from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.monitor.checkpoint import Checkpoint
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import Stream
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)


def open_rollout_consumer(s: MonitorSettings, store: StateStore) -> KafkaConsumer:
    c = KafkaConsumer(**s.kafka.client_config(), client_id=f"{s.kafka.client_id}-monitor-rollouts",
                      group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    parts = c.partitions_for_topic(ADAPTER_ROLLOUTS.name) or {0}
    tps = [TopicPartition(ADAPTER_ROLLOUTS.name, p) for p in sorted(parts)]
    c.assign(tps)
    for tp in tps:
        nxt = store.next_offset(tp.topic, tp.partition)
        if nxt >= 0:
            c.seek(tp, nxt)
        else:
            c.seek_to_beginning(tp)
    return c


class RolloutFollower:
    def __init__(self, consumer: Any, store: StateStore, checkpoint: Checkpoint, streams: dict[str, Stream]) -> None:
        self._consumer = consumer
        self._store = store
        self._checkpoint = checkpoint
        self._streams = streams

    def poll(self, now: float) -> list[Stream]:
        """Apply what the topic has (without waiting); return the streams that were reset."""
        batches = self._consumer.poll(timeout_ms=0)
        if not batches:
            return []
        self._checkpoint.begin()
        try:
            reset = [st for records in batches.values() for r in records for st in self._follow(r)]
        except BaseException:
            self._checkpoint.abort()
            raise
        for st in reset:
            self._checkpoint.changed(st)
        self._checkpoint.commit(now)
        return reset

    def _follow(self, r: Any) -> list[Stream]:
        self._checkpoint.store_offset(r.topic, r.partition, r.offset + 1)
        rollout = self._decode(r)
        return [] if rollout is None else self._apply(rollout)

    @staticmethod
    def _decode(r: Any) -> events_pb2.AdapterRollout | None:
        if r.value is None:  # a tombstone
            return None
        try:
            return codec.decode(r.value, r.headers, events_pb2.AdapterRollout)
        except codec.UndecodableRecord as exc:
            log.error("skipping undecodable rollout at offset %d: %s", r.offset, exc)
            return None

    def _apply(self, ro: events_pb2.AdapterRollout) -> list[Stream]:
        """A newer generation is recorded; a changed stable version resets the alias's streams."""
        generation, stable = self._store.rollout(ro.adapter_alias)
        if ro.generation <= generation:
            return []
        self._store.set_rollout(ro.adapter_alias, ro.generation, ro.stable.version)
        if ro.stable.version == stable:
            return []
        reset = [st for st in self._streams.values() if st.alias == ro.adapter_alias]
        for st in reset:
            log.info("%s promoted to %s: rebuilding the reference of %s", ro.adapter_alias, ro.stable.version,
                     st.model)
            st.reset(ro.stable.version)
        return reset

    def close(self) -> None:
        self._consumer.close(autocommit=False)
