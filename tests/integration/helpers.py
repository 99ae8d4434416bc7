"""Helpers for integration tests (real broker)."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable

from google.protobuf import message as _message

from driftloop.core.kafka import Delivered, EventConsumer
from driftloop.core.settings import KafkaSettings
from driftloop.core.topics import TopicSpec


def consume_until(
    settings: KafkaSettings, topics: list[TopicSpec], expected: dict[str, type[_message.Message]],
    done: Callable[[list[_message.Message]], bool], keep: Callable[[_message.Message], bool],
    timeout: float = 60.0,
) -> list[_message.Message]:
    """Read ``topics`` from the beginning with a fresh group; collect events ``keep`` accepts until
    ``done`` says so, then keep reading one more second to catch duplicates."""
    got: list[_message.Message] = []

    def handle(d: Delivered) -> None:
        if keep(d.event):
            got.append(d.event)

    # Other tests put poison records on the shared topics: skip what does not decode.
    # metadata_max_age_ms: a fresh group member whose first metadata lacks a topic's partitions gets an
    # empty assignment and, by default, looks again only after 5 minutes (seen in the hostile suite:
    # "No partition metadata for topic driftloop.dlq.v1", nothing read in 90 s); here after 2 s.
    consumer = EventConsumer(settings, topics, f"test-{uuid.uuid4().hex[:8]}", expected,
                             dead_letters=lambda record, error_type, reason: None, metadata_max_age_ms=2000)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(got):
            consumer.process(handle, timeout_ms=500)
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            consumer.process(handle, timeout_ms=200)
    finally:
        consumer.close()
    return got


def scrape(url: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value} (samples only)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def start_group_at_end(settings: KafkaSettings, group: str, topics: list[TopicSpec]) -> None:
    """Commit ``group``'s offsets at the current end of ``topics``, so a service started with that
    group reads only what a test produces from now on (the session's topics hold other tests' data)."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata, TopicPartition

    consumer = KafkaConsumer(**settings.client_config(), group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t.name, p) for t in topics for p in sorted(consumer.partitions_for_topic(t.name) or ())]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
    finally:
        consumer.close(autocommit=False)


def gate_figures(checks: dict) -> str:
    """A gate report's checks as ``name value (rule)``, for a measured-figure line."""
    return ", ".join(f"{k} {v['value']:.3f} ({v['rule']})" for k, v in checks.items())
