"""The shutdown path of an inference pod whose spool is an emptyDir (the chart's default): SIGTERM
while Kafka is unreachable; in-flight work finishes, the spool is drained for SPOOL_DRAIN_S, and what
is still undelivered is counted and logged as lost — never silently. (With Kafka up the drain
delivers everything: test_kafka_outage.) The transformers engine keeps this test light: the path is
the service's, not the engine's."""

from __future__ import annotations

import re
import time

import pytest

from driftloop.local.kafka import free_port
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import metric, scrape
from tests.integration.inference.conftest import inference_env, start_server

pytestmark = pytest.mark.integration


def test_sigterm_with_kafka_down_counts_the_events_it_loses(tiny_model, kafka_broker, tmp_path) -> None:
    env = inference_env(tiny_model, kafka_broker, tmp_path, DRIFTLOOP_INFERENCE_ENGINE="hf",
                        DRIFTLOOP_INFERENCE_FOLLOW_ROLLOUTS="false", DRIFTLOOP_INFERENCE_SPOOL_EPHEMERAL="true",
                        DRIFTLOOP_INFERENCE_SPOOL_DRAIN_S="2", DRIFTLOOP_INFERENCE_GRACE_PERIOD_S="2",
                        DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")  # nothing listens there
    server = start_server("inference-shutdown", env, tmp_path / "shutdown.log")
    try:
        for i in range(5):
            server.inference.Generate(pb.GenerateRequest(prompt=f"stop {i}", sampling=pb.SamplingParams(max_tokens=2)),
                                      timeout=60)
        deadline = time.monotonic() + 30  # the spool's writer thread appends off the request path
        while metric(scrape(server.metrics_url), "driftloop_events_spooled") < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(scrape(server.metrics_url), "driftloop_events_spooled") == 5
    finally:
        server.channel.close()
        code = server.process.stop(timeout=90)
    log = server.process.log_path.read_text(errors="replace")
    assert code == 0, log[-2000:]
    m = re.search(r"shutting down with (\d+) undelivered events after a \d+ s drain \(2 s allowed\)", log)
    assert m and int(m.group(1)) == 5, log[-2000:]
    assert 'driftloop_events_dropped_total{reason="shutdown"}' in log
