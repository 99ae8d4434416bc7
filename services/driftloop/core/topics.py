"""Every Kafka topic the project uses, declared once.

Topics are created by the project at start-up (``ensure_topics``); the broker's automatic topic
creation is off, so a typo in a topic name fails loudly instead of creating a stray topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
