"""The processes of the loop on this machine: a real Kafka broker, the three services (each given its
settings object as environment variables) and, when the binary is there, a Prometheus scraping them
with the shipped alert rules. Knows nothing of the scenario."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic_settings import BaseSettings

from driftloop.core.settings import KafkaSettings, settings_env
from driftloop.demo.settings import REPO_ROOT
from driftloop.local.kafka import LocalKafka, LocalKafkaSettings
from driftloop.local.ports import free_port
from driftloop.local.procs import ServiceProcess

RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yaml"


def prometheus_config(targets: dict[str, str], rules: Path = RULES, every_s: int = 5) -> str:
    """prometheus.yml scraping ``targets`` ({service: metrics URL}) with the shipped alert rules."""
    scrape = "\n".join(
        f"  - job_name: driftloop-{name}\n    static_configs:\n      - targets: ['{url.split('/')[2]}']"
        for name, url in targets.items())
    return (f"global:\n  scrape_interval: {every_s}s\n  evaluation_interval: {every_s}s\nrule_files:\n"
            f"  - {rules}\nscrape_configs:\n{scrape}\n")


class Stack:
    """Starts and stops the processes. ``start_process`` and ``broker`` are the process starter and
    the broker factory (fakes in unit tests)."""

    def __init__(self, run_dir: Path, start_process: Callable[..., ServiceProcess] = ServiceProcess,
                 broker: Callable[[LocalKafkaSettings], LocalKafka] = LocalKafka) -> None:
        self.run_dir = Path(run_dir)
        self.start_process = start_process
        self.make_broker = broker
        self.broker: LocalKafka | None = None
        self.procs: list[ServiceProcess] = []
        self.prometheus: subprocess.Popen | None = None

    def start_broker(self) -> KafkaSettings:
        self.broker = self.make_broker(LocalKafkaSettings(port=0, controller_port=0, state_dir=self.run_dir / "kafka"))
        self.broker.start()
        return KafkaSettings(bootstrap_servers=self.broker.bootstrap)

    def start(self, name: str, module: str, settings: BaseSettings, python: str = sys.executable,
              args: tuple[str, ...] = ()) -> ServiceProcess:
        """Start ``python -m module`` with ``settings`` in its environment; returns without waiting."""
        proc = self.start_process(name, module, settings_env(settings), self.run_dir / "logs" / f"{name}.log",
                                  python=python, args=args)
        self.procs.append(proc)
        return proc

    def start_prometheus(self, binary: Path, targets: dict[str, str]) -> str:
        """Start Prometheus on a free port; returns its URL."""
        cfg = self.run_dir / "prometheus.yml"
        cfg.write_text(prometheus_config(targets))
        port = free_port()
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        log = (self.run_dir / "logs" / "prometheus.log").open("ab")
        self.prometheus = subprocess.Popen(
            [str(binary), f"--config.file={cfg}", f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log, start_new_session=True)
        return f"http://127.0.0.1:{port}"

    def log_tails(self, lines: int = 20) -> dict[str, str]:
        return {p.name: p.log_tail(lines) for p in self.procs}

    def stop(self) -> None:
        """Services in reverse order of start (each SIGTERM, then SIGKILL), Prometheus, the broker."""
        for p in reversed(self.procs):
            p.stop(30)
        if self.prometheus is not None:
            self.prometheus.terminate()
            try:
                self.prometheus.wait(20)
            except subprocess.TimeoutExpired:
                self.prometheus.kill()
        if self.broker is not None:
            self.broker.stop()
