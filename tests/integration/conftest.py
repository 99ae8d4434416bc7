"""Integration fixtures: one real Kafka broker per test session, on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from driftloop.core.settings import KafkaSettings
from driftloop.local.kafka import LocalKafka, LocalKafkaSettings


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(
        LocalKafkaSettings(port=0, controller_port=0, state_dir=tmp_path_factory.mktemp("kafka"))
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture()
def kafka_settings(kafka_broker: LocalKafka) -> KafkaSettings:
    return kafka_broker.kafka_settings()


@pytest.fixture()
def unique() -> Callable[[str], str]:
    """Names unique to this test (consumer groups, request ids)."""
    run = uuid.uuid4().hex[:8]
    return lambda prefix: f"{prefix}-{run}"
