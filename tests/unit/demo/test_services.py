"""The settings the demo gives each service, and the environment they reach the service as: what the
hand-written environment of the demo used to say, now built from the services' settings classes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driftloop.core.settings import KafkaSettings, settings_env
from driftloop.demo import services
from driftloop.demo.settings import DemoSettings
from driftloop.inference.settings import InferenceSettings
from driftloop.monitor.settings import MonitorSettings
from driftloop.retrainer.settings import RetrainerSettings

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1234")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DRIFTLOOP_"):
            monkeypatch.delenv(key)


@pytest.fixture()
def demo(tmp_path: Path) -> DemoSettings:
    return DemoSettings(run_dir=tmp_path / "run", base_model_dir=tmp_path / "base")


def _read_back(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], cls):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls()


def test_inference_environment_is_the_demo_s_former_one(demo, tmp_path, monkeypatch) -> None:
    env = settings_env(services.inference(demo, KAFKA, tmp_path / "adapters", 5001, 5002))
    assert env == {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1234", "DRIFTLOOP_INFERENCE_MODEL_PATH": str(tmp_path / "base"),
        "DRIFTLOOP_INFERENCE_MODEL_NAME": "transit-base",
        "DRIFTLOOP_INFERENCE_ADAPTER_ROOT": str(tmp_path / "adapters"),
        "DRIFTLOOP_INFERENCE_SPOOL_DIR": str(tmp_path / "run" / "spool"), "DRIFTLOOP_INFERENCE_PORT": "5001",
        "DRIFTLOOP_INFERENCE_METRICS_PORT": "5002", "DRIFTLOOP_INFERENCE_HTTP_PORT": "0",
        "DRIFTLOOP_INFERENCE_ADMIN_TOKEN": services.ADMIN_TOKEN,
        "DRIFTLOOP_INFERENCE_MAX_MODEL_LEN": "128", "DRIFTLOOP_INFERENCE_MAX_TOKENS_LIMIT": "32",
        "DRIFTLOOP_INFERENCE_DEFAULT_MAX_TOKENS": "24"}
    back = _read_back(monkeypatch, env, InferenceSettings)
    assert back.admin_token.get_secret_value() == services.ADMIN_TOKEN and back.kafka == KAFKA


def test_monitor_environment_is_the_demo_s_former_one(demo, monkeypatch) -> None:
    given = services.monitor(demo, KAFKA)
    env = settings_env(given)
    assert env == {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1234",
        "DRIFTLOOP_MONITOR_STATE_DIR": str(demo.run_dir / "monitor"), "DRIFTLOOP_MONITOR_METRICS_PORT": "0",
        "DRIFTLOOP_MONITOR_REFERENCE_SIZE": "300", "DRIFTLOOP_MONITOR_WINDOW_SIZE": "100",
        "DRIFTLOOP_MONITOR_RATE_WINDOW": "150", "DRIFTLOOP_MONITOR_MIN_SAMPLES": "40",
        "DRIFTLOOP_MONITOR_LAG_INTERVAL_S": "2.0"}
    assert _read_back(monkeypatch, env, MonitorSettings) == given


def test_retrainer_settings_with_overrides(demo, tmp_path, monkeypatch) -> None:
    given = services.retrainer(demo, KAFKA, tmp_path / "adapters", "127.0.0.1:5001", max_steps=300,
                               gate_min_exact_match=0.4)
    env = settings_env(given)
    assert env["DRIFTLOOP_RETRAINER_MAX_STEPS"] == "300" and env["DRIFTLOOP_RETRAINER_LEARNING_RATE"] == "0.003"
    assert env["DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN"] == services.ADMIN_TOKEN
    assert env["DRIFTLOOP_RETRAINER_CURATED_DATA"] == str(demo.run_dir / "curated.jsonl")
    back = _read_back(monkeypatch, env, RetrainerSettings)
    assert back.gate_criteria() == given.gate_criteria() and back.train_config() == given.train_config()
    assert back.gate_min_robustness_ratio == 0.5 and back.canary_weight == 0.3 and back.train_threads == 1


def test_overrides_are_validated_by_the_service_s_settings_class(demo) -> None:
    with pytest.raises(ValueError):
        services.monitor(demo, KAFKA, no_such_field=1)
