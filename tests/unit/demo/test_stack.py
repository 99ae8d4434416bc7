"""The stack starts each service with its settings object as environment variables, and stops
everything it started, in reverse order; with a fake process starter and a fake broker."""

from __future__ import annotations

import sys
from pathlib import Path

from driftloop.core.settings import KafkaSettings
from driftloop.demo.stack import RULES, Stack, prometheus_config
from driftloop.local.kafka import LocalKafkaSettings
from driftloop.monitor.settings import MonitorSettings


class FakeProcess:
    started: list[FakeProcess] = []
    stopped: list[str] = []

    def __init__(self, name, module, env, log_path, python=sys.executable, args=()) -> None:
        self.name, self.module, self.env, self.log_path = name, module, env, log_path
        self.python, self.args = python, args
        FakeProcess.started.append(self)

    def stop(self, timeout: float) -> None:
        FakeProcess.stopped.append(self.name)

    def log_tail(self, lines: int) -> str:
        return f"{self.name} log"


class FakeBroker:
    def __init__(self, settings: LocalKafkaSettings) -> None:
        self.settings = settings
        self.bootstrap = "127.0.0.1:4321"
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


def test_start_passes_the_settings_as_environment(tmp_path: Path) -> None:
    stack = Stack(tmp_path, start_process=FakeProcess, broker=FakeBroker)
    kafka = stack.start_broker()
    assert kafka == KafkaSettings(bootstrap_servers="127.0.0.1:4321")
    assert stack.broker.settings.state_dir == tmp_path / "kafka" and stack.broker.settings.port == 0
    proc = stack.start("monitor", "driftloop.monitor", MonitorSettings(kafka=kafka, reference_size=50),
                       python="/venv/monitor/python", args=("x",))
    assert proc.env == {"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:4321", "DRIFTLOOP_MONITOR_REFERENCE_SIZE": "50"}
    assert (proc.module, proc.python, proc.args) == ("driftloop.monitor", "/venv/monitor/python", ("x",))
    assert proc.log_path == tmp_path / "logs" / "monitor.log"
    assert stack.log_tails() == {"monitor": "monitor log"}


def test_stop_stops_services_in_reverse_then_the_broker(tmp_path: Path) -> None:
    FakeProcess.stopped.clear()
    stack = Stack(tmp_path, start_process=FakeProcess, broker=FakeBroker)
    stack.start_broker()
    for name in ("inference", "monitor", "retrainer"):
        stack.start(name, f"driftloop.{name}", MonitorSettings())
    stack.stop()
    assert FakeProcess.stopped == ["retrainer", "monitor", "inference"]
    assert not stack.broker.running


def test_stop_before_anything_started(tmp_path: Path) -> None:
    Stack(tmp_path, start_process=FakeProcess, broker=FakeBroker).stop()


def test_prometheus_config_scrapes_every_service_with_the_shipped_rules() -> None:
    cfg = prometheus_config({"inference": "http://127.0.0.1:9400/metrics", "monitor": "http://127.0.0.1:9401/metrics"})
    assert cfg == ("global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nrule_files:\n"
                   f"  - {RULES}\nscrape_configs:\n"
                   "  - job_name: driftloop-inference\n    static_configs:\n      - targets: ['127.0.0.1:9400']\n"
                   "  - job_name: driftloop-monitor\n    static_configs:\n      - targets: ['127.0.0.1:9401']\n")
    assert RULES.exists()
