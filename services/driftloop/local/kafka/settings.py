"""Settings of the local broker. Environment prefix ``DRIFTLOOP_LOCAL_KAFKA_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[4]
POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"


class LocalKafkaSettings(BaseSettings):
    """The local broker. Environment prefix ``DRIFTLOOP_LOCAL_KAFKA_``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_LOCAL_KAFKA_", extra="forbid")

    host: str = Field("127.0.0.1", description="Listen address (loopback only).")
    port: int = Field(9092, description="Client listener port; 0 picks a free one.")
    controller_port: int = Field(9093, description="KRaft controller port; 0 picks a free one.")
    state_dir: Path = Field(REPO_ROOT / ".run" / "kafka", description="Data, logs, config and pid file.")
    jars_dir: Path = Field(REPO_ROOT / ".cache" / "kafka-jars", description="Cache of the broker's jars.")
    java: str = Field("java", description="Java 17+ executable.")
    heap_opts: str = Field("-Xms256m -Xmx512m", description="JVM heap options.")
    start_timeout_s: float = Field(120.0, description="How long to wait for readiness.")
