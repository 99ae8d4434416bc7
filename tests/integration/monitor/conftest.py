"""The monitor as a real process (its own environment) against the session's real broker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from driftloop.local.kafka import LocalKafka
from driftloop.local.procs import ServiceProcess


@dataclass
class MonitorProcess:
    process: ServiceProcess
    metrics_url: str


def start_monitor(broker: LocalKafka, state: Path, group: str, name: str = "monitor", **extra: str) -> MonitorProcess:
    env = {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DRIFTLOOP_MONITOR_GROUP_ID": group,
        "DRIFTLOOP_MONITOR_STATE_DIR": str(state),
        "DRIFTLOOP_MONITOR_METRICS_PORT": "0",
        "DRIFTLOOP_MONITOR_LAG_INTERVAL_S": "1",
        **extra,
    }
    proc = ServiceProcess(name, "driftloop.monitor", env, state / f"{name}.log")
    ready = proc.wait_ready(timeout=180)
    return MonitorProcess(proc, f"http://{ready['metrics']}/metrics")


@pytest.fixture()
def monitor_factory(kafka_broker, tmp_path):
    started: list[MonitorProcess] = []

    def factory(group: str, state: Path | None = None, **extra: str) -> MonitorProcess:
        m = start_monitor(kafka_broker, state or tmp_path / "state", group, **extra)
        started.append(m)
        return m

    yield factory
    for m in started:
        m.process.stop()
