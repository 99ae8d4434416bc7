"""Settings shared by every service. Each service has one settings class of its own
(``driftloop.<service>.settings``); this module holds the pieces they share.

Nothing outside the settings classes reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_core import to_json
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach Kafka. Environment prefix ``DRIFTLOOP_KAFKA_``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_KAFKA_", extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers (SSL/SASL_SSL).")
    ssl_certfile: str | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: str | None = Field(None, description="Client key for mutual TLS.")
    client_id: str = Field("driftloop", description="Client id prefix shown in broker logs and quotas.")
    request_timeout_ms: int = Field(30_000, ge=1_000, description="Per-request timeout.")
    delivery_timeout_ms: int = Field(
        120_000, ge=1_000, description="Upper bound on the time a produced record may spend in retries."
    )
    linger_ms: int = Field(5, ge=0, description="Producer batching delay.")
    max_block_ms: int = Field(
        10_000, ge=0, description="How long send() may block for metadata or buffer space."
    )

    def client_config(self) -> dict[str, Any]:
        """Connection options common to kafka-python producers, consumers and admin clients."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_plain_username"] = self.sasl_username
            cfg["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                cfg[key] = getattr(self, key)
        return cfg


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """The environment variables from which a process builds ``settings`` again: one per field that was
    set (given, or read from this process's environment); defaults stay the reading side's own. A
    nested settings object (``kafka``) goes under its own prefix (``DRIFTLOOP_KAFKA_``); lists,
    tuples and dicts as JSON, which is how pydantic-settings reads them."""
    cls = type(settings)
    prefix = cls.model_config.get("env_prefix", "")
    env: dict[str, str] = {}
    for name in sorted(settings.model_fields_set):
        value, field = getattr(settings, name), cls.model_fields[name]
        if isinstance(value, BaseSettings):
            env.update(settings_env(value))
        elif value is None:
            if field.get_default(call_default_factory=True) is not None:
                raise ValueError(f"{cls.__name__}.{name}=None cannot be written as an environment variable")
        else:
            alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
            env[(alias or f"{prefix}{name}").upper()] = _env_value(value)
    return env


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | Path):
        return str(value)
    return to_json(value).decode()
