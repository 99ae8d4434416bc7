"""The observer reads the loop's progress from the services' metrics: real collectors
(driftloop.core.metrics) rendered in the Prometheus text format, served by a fake fetch."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from driftloop.core.metrics import MonitorMetrics, RetrainerMetrics
from driftloop.demo.observer import Observer, parse_samples
from driftloop.demo.timeline import Timeline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Services:
    """Two real metric registries and a fetch that serves them (or fails, like a service not up yet)."""

    def __init__(self) -> None:
        self.monitor, self.retrainer = MonitorMetrics(CollectorRegistry()), RetrainerMetrics(CollectorRegistry())
        self.retrainer.track_alias("qa")
        self.down: set[str] = set()

    def fetch(self, url: str) -> str:
        if url in self.down:
            raise OSError("connection refused")
        m = self.monitor if url == "monitor" else self.retrainer
        return generate_latest(m.registry).decode()


def _observer() -> tuple[Observer, Services, Clock]:
    clock, svc = Clock(), Services()
    timeline = Timeline(clock.now, clock=clock, echo=False)
    return Observer(timeline, {"monitor": "monitor", "retrainer": "retrainer"}, "qa", fetch=svc.fetch), svc, clock


def _step(obs: Observer, clock: Clock) -> None:
    clock.now += 2
    obs.scrape()
    obs.progress()


def test_parse_samples_keeps_the_timeline_series_only() -> None:
    m = MonitorMetrics(CollectorRegistry())
    m.statistic.labels("base", "qa", "input_embedding").set(0.03)
    m.events.labels("t", "processed").inc()
    rows = parse_samples(generate_latest(m.registry).decode(), 4.0, "monitor")
    assert {"t": 4.0, "service": "monitor", "name": "driftloop_monitor_drift_statistic",
            "labels": {"model": "base", "adapter_alias": "qa", "detector": "input_embedding"}, "value": 0.03} in rows
    assert not any(r["name"].startswith("driftloop_monitor_events") for r in rows)


def test_progress_puts_each_step_on_the_timeline_once() -> None:
    obs, svc, clock = _observer()
    _step(obs, clock)
    assert obs.timeline.events == []
    svc.monitor.triggers.labels("base", "qa").inc()
    svc.retrainer.in_progress.labels("qa").set(1)
    _step(obs, clock)
    svc.retrainer.stage_seconds.labels("dataset").observe(12.4)
    _step(obs, clock)
    _step(obs, clock)
    assert [(e["t"], e["event"], e["detail"]) for e in obs.timeline.events] == [
        (4.0, "monitor raised a RetrainTrigger", ""),
        (4.0, "retrainer: run started", "collecting corrections and confirmed answers"),
        (6.0, "retrainer: dataset done", "12 s")]


def test_training_lasts_from_the_dataset_to_the_gate() -> None:
    obs, svc, clock = _observer()
    svc.retrainer.in_progress.labels("qa").set(1)
    _step(obs, clock)
    assert not obs.training()
    svc.retrainer.stage_seconds.labels("dataset").observe(3)
    _step(obs, clock)
    assert obs.training()
    svc.retrainer.stage_seconds.labels("training").observe(30)
    svc.retrainer.stage_seconds.labels("gate").observe(9)
    _step(obs, clock)
    assert not obs.training()
    svc.retrainer.stage_seconds.labels("dataset").observe(3)  # a follow-up round's run
    _step(obs, clock)
    assert obs.training()


def test_outcome_is_the_first_final_run_result_of_the_alias() -> None:
    obs, svc, clock = _observer()
    _step(obs, clock)
    assert obs.outcome() is None  # the series exist at 0 (track_alias)
    svc.retrainer.runs.labels("qa", "failed").inc()
    svc.retrainer.runs.labels("other", "promoted").inc()
    _step(obs, clock)
    assert obs.outcome() is None
    svc.retrainer.runs.labels("qa", "promoted").inc()
    _step(obs, clock)
    assert obs.outcome() == "promoted"


def test_a_rejection_ends_the_wait_only_when_the_episode_has_no_attempt_left() -> None:
    obs, svc, clock = _observer()
    svc.retrainer.after_rejection.labels("qa", "retry").inc()  # counted before the run (service._finished)
    svc.retrainer.runs.labels("qa", "rejected").inc()
    _step(obs, clock)
    assert obs.outcome() is None  # attempt 2 is pending
    assert [e["event"] for e in obs.timeline.events] == ["retrainer: gate rejected, next attempt raised"]
    svc.retrainer.after_rejection.labels("qa", "gave_up").inc()
    svc.retrainer.runs.labels("qa", "rejected").inc()
    _step(obs, clock)
    assert obs.outcome() == "rejected"


def test_a_service_that_does_not_answer_is_skipped() -> None:
    obs, svc, clock = _observer()
    svc.down.add("retrainer")
    svc.monitor.triggers.labels("base", "qa").inc()
    _step(obs, clock)
    assert {r["service"] for r in obs.timeline.samples} == {"monitor"}
    assert [e["event"] for e in obs.timeline.events] == ["monitor raised a RetrainTrigger"]


def test_latest_reads_the_newest_scrape_only() -> None:
    obs, svc, clock = _observer()
    svc.monitor.lag.labels("a").set(5)
    svc.monitor.lag.labels("b").set(7)
    _step(obs, clock)
    assert obs.timeline.latest("driftloop_monitor_consumer_lag") == 12
    svc.monitor.lag.labels("a").set(0)
    _step(obs, clock)
    assert obs.timeline.latest("driftloop_monitor_consumer_lag") == 7
    assert obs.timeline.latest("driftloop_monitor_consumer_lag", topic="b") == 7


def test_rounds_promotions_and_the_episodes_end() -> None:
    """big-change: the demo counts the alias's promotions (one per round) and stops following once the
    monitor says the episode is back to normal (or out of rounds)."""
    obs, svc, clock = _observer()
    svc.monitor.follow_ups.labels("base", "qa", "recovered")  # at 0, as the monitor starts each stream
    _step(obs, clock)
    assert (obs.promotions(), obs.episode_end()) == (0, None)
    svc.retrainer.runs.labels("qa", "promoted").inc()
    svc.monitor.follow_ups.labels("base", "qa", "raised").inc()
    _step(obs, clock)
    assert (obs.promotions(), obs.episode_end()) == (1, None)
    svc.retrainer.runs.labels("qa", "promoted").inc()
    svc.monitor.follow_ups.labels("base", "qa", "recovered").inc()
    _step(obs, clock)
    assert (obs.promotions(), obs.episode_end()) == (2, "recovered")
