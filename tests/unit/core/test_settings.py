from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftloop.core.settings import KafkaSettings


def test_reads_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SASL_PASSWORD", "s3cret")
    s = KafkaSettings()
    cfg = s.client_config()
    assert cfg["bootstrap_servers"] == ["a:1", "b:2"]
    assert cfg["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(s)


def test_rejects_unknown_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON")
    with pytest.raises(ValidationError):
        KafkaSettings()
