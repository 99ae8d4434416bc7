"""settings_env: a settings object as the environment variables its process reads it back from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftloop.core.settings import KafkaSettings, settings_env


class Sample(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_SAMPLE_", extra="forbid")

    path: Path = Path("a")
    port: int = 1
    share: float = 0.5
    on: bool = False
    token: SecretStr | None = None
    signals: tuple[str, ...] = ("x",)
    optional: str | None = None
    named: str = Field("", validation_alias="SAMPLE_NAMED")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith(("DRIFTLOOP_SAMPLE_", "DRIFTLOOP_KAFKA_", "SAMPLE_")):
            monkeypatch.delenv(key)


def test_only_fields_that_were_set_become_variables() -> None:
    assert settings_env(Sample(port=7)) == {"DRIFTLOOP_SAMPLE_PORT": "7"}


def test_values_are_written_the_way_pydantic_settings_reads_them() -> None:
    env = settings_env(Sample(path=Path("/x/y"), share=3e-3, on=True, token=SecretStr("s3cret"),
                              signals=("a", "b"), SAMPLE_NAMED="n"))
    assert env == {"DRIFTLOOP_SAMPLE_PATH": "/x/y", "DRIFTLOOP_SAMPLE_SHARE": "0.003", "DRIFTLOOP_SAMPLE_ON": "true",
                   "DRIFTLOOP_SAMPLE_TOKEN": "s3cret", "DRIFTLOOP_SAMPLE_SIGNALS": '["a","b"]', "SAMPLE_NAMED": "n"}


def test_nested_settings_go_under_their_own_prefix() -> None:
    env = settings_env(Sample(kafka=KafkaSettings(bootstrap_servers="h:1", linger_ms=0)))
    assert env == {"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": "h:1", "DRIFTLOOP_KAFKA_LINGER_MS": "0"}


def test_none_is_left_to_a_none_default_and_refused_otherwise() -> None:
    assert settings_env(Sample(optional=None)) == {}

    class NotNone(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_SAMPLE_")
        value: str | None = "x"

    with pytest.raises(ValueError, match="value=None"):
        settings_env(NotNone(value=None))


def test_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    given = Sample(path=Path("/p"), port=0, on=True, token=SecretStr("t"), signals=("a", "b"), SAMPLE_NAMED="n",
                   kafka=KafkaSettings(bootstrap_servers="h:1,h:2", sasl_password=SecretStr("pw")))
    for key, value in settings_env(given).items():
        monkeypatch.setenv(key, value)
    again = Sample()
    assert again.model_dump() == given.model_dump()
    assert again.token.get_secret_value() == "t" and again.kafka.sasl_password.get_secret_value() == "pw"


def test_values_read_from_this_environment_are_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_SAMPLE_PORT", "9")
    assert settings_env(Sample()) == {"DRIFTLOOP_SAMPLE_PORT": "9"}
