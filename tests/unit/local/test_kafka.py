"""The local broker's pure parts: its configuration files and its command line (with a fake broker).
The real broker: tests/integration/local."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driftloop.local.kafka import LocalKafka, LocalKafkaSettings, free_port
from driftloop.local.kafka.__main__ import main
from driftloop.local.kafka.broker import pid_alive
from driftloop.local.kafka.config import server_properties, write_config


def test_server_properties_listen_on_loopback_and_never_create_topics(tmp_path: Path) -> None:
    props = server_properties("127.0.0.1", 9092, 9093, tmp_path / "data")
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert props["auto.create.topics.enable"] == "false" and props["log.dirs"] == str(tmp_path / "data")


def test_write_config(tmp_path: Path) -> None:
    server, log4j = write_config(tmp_path / "state", {"a": "1", "b.c": "x"})
    assert server.read_text() == "a=1\nb.c=x\n"
    assert "rootLogger.level = INFO" in log4j.read_text()


def test_ports_zero_pick_free_ones(tmp_path: Path) -> None:
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=tmp_path))
    assert broker.port > 0 and broker.controller_port > 0 and broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert broker.running_pid() is None
    broker.stop()  # idempotent with nothing running
    assert free_port() > 0


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(2**22 + 1)


class FakeBroker:
    bootstrap = "127.0.0.1:1"

    def __init__(self, pid: int | None = None) -> None:
        self.pid, self.calls = pid, []

    def running_pid(self) -> int | None:
        return self.pid

    def start(self) -> None:
        self.calls.append("start")

    def detach(self) -> None:
        self.calls.append("detach")

    def stop(self) -> None:
        self.calls.append("stop")

    def kafka_settings(self):
        self.calls.append("topics")
        raise RuntimeError("no broker here")


def test_up_starts_and_leaves_the_broker_running(capsys) -> None:
    broker = FakeBroker()
    assert main(["up"], broker) == 0
    assert broker.calls == ["start", "detach"] and capsys.readouterr().out == "127.0.0.1:1\n"


def test_up_when_running_only_ensures_topics() -> None:
    broker = FakeBroker(pid=42)
    with pytest.raises(RuntimeError):
        main(["up"], broker)
    assert broker.calls == ["topics"]


def test_status_and_down(capsys) -> None:
    assert main(["status"], FakeBroker()) == 1
    assert main(["status"], FakeBroker(pid=42)) == 0
    broker = FakeBroker(pid=42)
    assert main(["down"], broker) == 0 and broker.calls == ["stop"]
    assert capsys.readouterr().out == "not running\nrunning pid=42 bootstrap=127.0.0.1:1\nstopped\n"
