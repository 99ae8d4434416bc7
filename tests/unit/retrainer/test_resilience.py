"""A run survives transient trouble: the canary observer keeps reading through a broker hiccup, a
failed run is retried, and a run that fails for good never leaves its canary taking traffic."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer import canary
from driftloop.retrainer.outcomes import Outcomes
from driftloop.retrainer.service import Retrainer
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import RunOutcome
from driftloop.v1 import events_pb2


def test_canary_observer_retries_a_failed_reading() -> None:
    calls = {"n": 0}

    def measure(settings, alias, since):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("MetadataEmptyBrokerList")  # the broker was briefly fenced
        return canary.CanaryStats({"v2": canary.VersionStats(requests=30, feedback=30, negative=3),
                                   "v1": canary.VersionStats(requests=30, feedback=30, negative=9)})

    observer = canary.CanaryObserver(None, min_requests=20, max_wait_s=30, max_negative_increase=0.05,
                                     max_error_increase=0.02, poll_s=0, measure=measure)
    ok, detail = observer("transit-qa", "v1", "v2")
    assert ok and calls["n"] == 2, detail


class FakePipeline:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.abandoned = False

    def run(self, trigger) -> RunOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("broker unreachable")
        return RunOutcome(trigger.trigger_id, trigger.adapter_alias, "r-1", "promoted")

    def abandon(self, trigger) -> str:
        self.abandoned = True
        return "; canary r-1 rolled back"


def _retrainer(pipeline: FakePipeline, tmp_path) -> Retrainer:
    settings = RetrainerSettings(run_attempts=3, retry_backoff_s=0)
    return Retrainer(settings, RetrainerMetrics(CollectorRegistry()), None, None,
                     Outcomes(tmp_path / "outcomes.sqlite"), lambda t: None, pipeline)


@pytest.mark.parametrize("failures, result", [(0, "promoted"), (2, "promoted"), (3, "failed")])
def test_runs_are_retried_then_abandoned(failures: int, result: str, tmp_path) -> None:
    pipeline = FakePipeline(failures)
    trigger = events_pb2.RetrainTrigger(trigger_id="t1", adapter_alias="transit-qa")
    outcome = _retrainer(pipeline, tmp_path).run_with_retries(trigger)
    assert outcome.result == result
    assert pipeline.calls == min(failures + 1, 3)
    assert pipeline.abandoned == (result == "failed")
    if result == "failed":
        assert "ConnectionError" in outcome.detail and "rolled back" in outcome.detail
