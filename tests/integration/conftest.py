"""Integration fixtures: one real Kafka broker per test session, on free ports, one real inference
service (vLLM engine) on a tiny model, shared by every suite that needs a plain one, and the small
transit base model the loop's tests train on, built once."""

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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    from tests.integration.inference.conftest import build_model_files  # serving environment only

    return build_model_files(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def inference_server(tiny_model, kafka_broker, tmp_path_factory):
    from tests.integration.inference.conftest import inference_env, start_server

    state = tmp_path_factory.mktemp("inference")
    server = start_server("inference", inference_env(tiny_model, kafka_broker, state), state / "server.log")
    try:
        yield server
    finally:
        server.channel.close()
        server.process.stop()


@pytest.fixture(scope="session")
def small_base_model(tmp_path_factory: pytest.TempPathFactory):
    """The 2-layer transit base model (``SMALL``), built once per session (its training alone took
    33-41 s here, plus its evaluation) for the retrainer's loop tests and both end-to-end demo
    scenarios; read-only to all of them."""
    from driftloop.demo.base_model import build  # serving environment only
    from tests.integration.retrainer.conftest import SMALL

    return build(tmp_path_factory.getbasetemp() / "small-base-model", SMALL)
