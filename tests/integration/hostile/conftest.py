"""The hostile-input suite: the session's real inference service (vLLM engine), the real broker, the
monitor (its own environment) and the retrainer as processes. Each case sends what an untrusted
client, or a forged record, would; the last module checks the loop still works afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from driftloop.core.topics import FEEDBACK, PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.local.procs import ServiceProcess
from tests.integration.helpers import metric, scrape, start_group_at_end
from tests.integration.inference.conftest import ADMIN_TOKEN

MONITOR_PYTHON = Path(__file__).resolve().parents[3] / ".venvs" / "monitor" / "bin" / "python"


@dataclass
class Loop:
    run: str
    monitor: ServiceProcess
    monitor_url: str
    retrainer: ServiceProcess
    retrainer_url: str
    outside: Path  # a directory beside the adapter root that no input may touch
    adapter_root: Path
    state: Path
    cases: list[str] = field(default_factory=list)

    def case(self, name: str) -> None:
        self.cases.append(name)

    def monitor_metric(self, name: str, **labels: str) -> float:
        return metric(scrape(self.monitor_url), name, **labels)

    def retrainer_metric(self, name: str, **labels: str) -> float:
        return metric(scrape(self.retrainer_url), name, **labels)

    def wait_monitor(self, name: str, value: float, timeout: float = 120, **labels: str) -> float:
        return _wait_for(self.monitor_url, self.monitor, name, value, timeout, **labels)


def _wait_for(url: str, proc: ServiceProcess, name: str, value: float, timeout: float, **labels: str) -> float:
    """Until the scraped metric reaches ``value``; the service's log tail if it never does."""
    deadline = time.monotonic() + timeout
    got = 0.0
    while time.monotonic() < deadline:
        got = metric(scrape(url), name, **labels)
        if got >= value:
            return got
        time.sleep(0.5)
    raise AssertionError(f"{name}{labels} = {got}, waited for {value}\n{proc.log_tail(30)}")


@pytest.fixture(scope="package")
def loop(kafka_broker, tiny_model, inference_server, tmp_path_factory) -> Iterator[Loop]:
    if not MONITOR_PYTHON.exists():
        pytest.fail(f"{MONITOR_PYTHON} missing: run `make env`")
    run = f"hostile-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("hostile")
    settings = kafka_broker.kafka_settings()
    outside = tiny_model.adapter_root.parent / "outside-the-adapter-root"
    outside.mkdir(exist_ok=True)
    (outside / "sentinel").write_text("untouched")
    common = {"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap}
    start_group_at_end(settings, f"{run}-monitor", [PREDICTIONS, FEEDBACK])
    monitor = ServiceProcess("hostile-monitor", "driftloop.monitor", {
        **common, "DRIFTLOOP_MONITOR_GROUP_ID": f"{run}-monitor", "DRIFTLOOP_MONITOR_STATE_DIR": str(root / "monitor"),
        "DRIFTLOOP_MONITOR_METRICS_PORT": "0", "DRIFTLOOP_MONITOR_LAG_INTERVAL_S": "1",
        # Rates get a verdict after 10 samples, so client-caused failures would raise an error-rate
        # trigger quickly if they counted; no drift test runs (the reference is never complete).
        "DRIFTLOOP_MONITOR_REFERENCE_SIZE": "5000", "DRIFTLOOP_MONITOR_MIN_SAMPLES": "10",
        "DRIFTLOOP_MONITOR_RATE_WINDOW": "50", "DRIFTLOOP_MONITOR_MAX_STREAMS": "4",
        "DRIFTLOOP_MONITOR_TRIGGER_SIGNALS": '["error_rate", "negative_feedback_rate"]',
        "DRIFTLOOP_MONITOR_NEGATIVE_FEEDBACK_THRESHOLD": "0.9",
    }, root / "monitor.log", python=str(MONITOR_PYTHON))
    start_group_at_end(settings, f"{run}-retrainer", [RETRAIN_TRIGGERS])
    retrainer = ServiceProcess("hostile-retrainer", "driftloop.retrainer", {
        **common, "DRIFTLOOP_RETRAINER_GROUP_ID": f"{run}-retrainer",
        "DRIFTLOOP_RETRAINER_BASE_MODEL": str(tiny_model.base),
        "DRIFTLOOP_RETRAINER_ADAPTER_ROOT": str(tiny_model.adapter_root),
        "DRIFTLOOP_RETRAINER_STATE_DIR": str(root / "retrainer"),
        "DRIFTLOOP_RETRAINER_INFERENCE_ADDRESS": inference_server.grpc_address,
        "DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN, "DRIFTLOOP_RETRAINER_METRICS_PORT": "0",
        "DRIFTLOOP_RETRAINER_RETRY_BACKOFF_S": "1",
    }, root / "retrainer.log", args=("serve",))
    try:
        ready_r = retrainer.wait_ready(120)
        ready_m = monitor.wait_ready(240)
        loop = Loop(run, monitor, f"http://{ready_m['metrics']}/metrics", retrainer,
                    f"http://{ready_r['metrics']}/metrics", outside, tiny_model.adapter_root, root)
        yield loop
        print(f"\nhostile-input suite: {len(loop.cases)} cases tried")
    finally:
        monitor.stop()
        retrainer.stop()
