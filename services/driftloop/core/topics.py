"""Every Kafka topic the project uses, declared once.

Topics are created by the project at start-up (:func:`ensure_topics`); the broker's automatic topic
creation is off, so a typo in a topic name fails loudly instead of creating a stray topic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

if TYPE_CHECKING:
    from driftloop.core.settings import KafkaSettings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    """What the record key is (documentation; producers follow it)."""
    config: dict[str, str] = field(default_factory=dict)


PREDICTIONS = TopicSpec("driftloop.predictions.v1", partitions=3, key="request id")
FEEDBACK = TopicSpec("driftloop.feedback.v1", partitions=3, key="request id")
RETRAIN_TRIGGERS = TopicSpec("driftloop.retrain-triggers.v1", partitions=1, key="dedupe key")
ADAPTER_ROLLOUTS = TopicSpec(
    "driftloop.adapter-rollouts.v1",
    partitions=1,
    key="adapter alias",
    # The desired adapter state every inference replica converges to: latest record per alias.
    config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
)
DLQ = TopicSpec("driftloop.dlq.v1", partitions=1, key="origin topic")

ALL_TOPICS: tuple[TopicSpec, ...] = (PREDICTIONS, FEEDBACK, RETRAIN_TRIGGERS, ADAPTER_ROLLOUTS, DLQ)


def ensure_topics(
    settings: KafkaSettings, topics: Iterable[TopicSpec] = ALL_TOPICS, replication_factor: int = 1
) -> list[str]:
    """Create missing topics; return the names created. Existing topics are left alone."""
    admin = KafkaAdminClient(client_id=f"{settings.client_id}-admin", **settings.client_config())
    try:
        existing = set(admin.list_topics())
        wanted = {
            t.name: {"num_partitions": t.partitions, "replication_factor": replication_factor,
                     "configs": dict(t.config)}
            for t in topics
            if t.name not in existing
        }
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won the race
                admin.create_topics(wanted, timeout_ms=30_000, wait_for_metadata=True)
        return sorted(wanted)
    finally:
        admin.close()
