"""A gate rejection is not the end of an episode (retrainer/episodes.py): the real trigger consumer
and pipeline, with the fakes of test_pipeline (replica, feedback, trainer) and a fake triggers topic
the retrainer's follow-up attempts are published to."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer import episodes
from driftloop.retrainer.gating import gate_alias
from driftloop.retrainer.outcomes import Outcomes
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.service import Retrainer
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import Admission, RunOutcome, TriggerRefused, version_for
from driftloop.retrainer.wiring import build_pipeline
from tests.unit.retrainer import fakes

NOW = 1_700_000_000.0


def rejected(corrections: int = 80) -> RunOutcome:
    return RunOutcome("t" * 16, "qa", "r-tttttttttttt", "rejected", "Gate REJECTED on margin_over_serving\n- ...",
                      corrections)


def test_the_next_attempt_is_its_own_trigger_and_version_in_the_same_episode() -> None:
    s = RetrainerSettings(rejection_retries=2, retry_min_new_corrections=20)
    first = fakes.trigger()
    second = episodes.follow_up(first, rejected(80), s, NOW)
    assert second is not None and second == episodes.follow_up(first, rejected(80), s, NOW)  # same when redone
    assert (second.attempt, second.parent_trigger_id, second.min_corrections) == (2, first.trigger_id, 100)
    assert version_for(second.trigger_id) != version_for(first.trigger_id)
    assert second.dedupe_key == f"{first.dedupe_key}#attempt2" and second.window_start == first.window_start
    assert second.adapter_version == first.adapter_version and second.created_time.seconds == NOW
    assert "the gate rejected r-tttttttttttt (Gate REJECTED on margin_over_serving)" in second.reason
    third = episodes.follow_up(second, rejected(100), s, NOW)
    assert third.attempt == 3 and third.dedupe_key == f"{first.dedupe_key}#attempt3" and third.min_corrections == 120
    assert episodes.follow_up(third, rejected(120), s, NOW) is None  # 1 + 2 retries: the episode ends
    assert "Next: nothing" in episodes.next_step(third, None, s)
    assert "Next: attempt 2 of 3" in episodes.next_step(first, second, s)
    assert episodes.follow_up(first, rejected(), RetrainerSettings(rejection_retries=0), NOW) is None


def test_admission_refuses_an_attempt_beyond_the_bound_and_absurd_corrections() -> None:
    routes = fakes.Replica("qa", "v1")
    admit = Admission(3600, lambda alias, version: False, routes, clock=lambda: NOW, max_attempt=3)
    t = fakes.trigger()
    t.created_time.FromSeconds(int(NOW))
    t.attempt = 4
    with pytest.raises(TriggerRefused, match="attempt 4"):
        admit(t)
    t.attempt, t.min_corrections = 2, 10**9
    with pytest.raises(TriggerRefused, match="min_corrections"):
        admit(t)
    t.min_corrections, t.parent_trigger_id = 100, "../etc"
    with pytest.raises(TriggerRefused):
        admit(t)


class Topic(fakes.Consumer):
    """The triggers topic: records handed out in order; what the retrainer publishes is appended."""

    def __init__(self, stop) -> None:
        super().__init__([], stop)
        self.published = []
        self.fail_publish = 0

    def publish(self, trigger) -> None:
        if self.fail_publish:
            self.fail_publish -= 1
            raise fakes.Fail("broker unreachable")
        self.published.append(trigger)
        self.records.append(fakes.record(trigger, len(self.published)))


class Rig:
    def __init__(self, tmp_path: Path, retries: int = 2, new_corrections: list[int] | None = None) -> None:
        self.stop = threading.Event()
        self.topic = Topic(self.stop)
        self.settings = RetrainerSettings(adapter_root=tmp_path / "adapters", state_dir=tmp_path / "state",
                                          gate_min_robustness_ratio=0.0, retry_backoff_s=0, rejection_retries=retries,
                                          retry_min_new_corrections=20, retry_wait_s=0, collect_poll_s=1)
        self.metrics = RetrainerMetrics(CollectorRegistry())
        self.registry = Registry(self.settings.adapter_root)
        self.replica = fakes.Replica("qa", "v1")
        self.sizes = list(new_corrections or [80])  # corrections in the topic at each run's collection
        self.trained: list[int] = []  # corrections collected by each run that trained
        self.collected: list[int] = []
        self.outcomes = Outcomes(tmp_path / "outcomes.sqlite")

        def feedback(alias, since, confirmed_since):
            n = self.sizes.pop(0) if len(self.sizes) > 1 else self.sizes[0]
            self.collected.append(n)
            return fakes.corrections(n)

        def train(base, train, val, out_dir, cfg):
            self.trained.append(self.collected[-1])
            return fakes.train(base, train, val, out_dir, cfg)

        pipeline, _ = build_pipeline(self.settings, self.metrics, self.registry, self.replica, self.replica, feedback,
                                     lambda *a: (True, "canary healthy"), trainer=train, clock=lambda: NOW,
                                     sleep=lambda s: None)
        admit = Admission(3600, self.registry.exists, self.replica, clock=lambda: NOW, max_attempt=1 + retries)
        self.retrainer = Retrainer(self.settings, self.metrics, self.topic, lambda *a: None, self.outcomes, admit,
                                   pipeline, sleep=lambda s: None, publish=self.topic.publish, clock=lambda: NOW)

    def learns_from(self, n: int) -> None:
        """The candidate answers the corrections right once its run collected ``n`` of them or more."""
        original = self.replica.answerer

        def answerer(alias: str = "", version: str = ""):
            if alias == gate_alias("qa") and self.trained and self.trained[-1] >= n:
                self.replica.answers[alias] = {r.question: r.answer for r in fakes.corrections(200)}
            else:
                self.replica.answers.pop(gate_alias("qa"), None)
            return original(alias, version)
        self.replica.answerer = answerer

    def run(self, first) -> Rig:
        first.created_time.FromSeconds(int(NOW))
        self.topic.records.append(fakes.record(first, 0))
        self.retrainer.run(self.stop)
        self.retrainer.close()
        return self

    def results(self) -> list[tuple[str, str]]:
        return [(o["result"], o["version"]) for o in self.outcomes.all()]

    def after_rejection(self, result: str) -> float:
        return self.metrics.registry.get_sample_value("driftloop_retrainer_after_rejection_total",
                                                      {"adapter_alias": "qa", "result": result}) or 0.0


def test_a_rejection_then_more_corrections_gives_a_second_attempt_that_passes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, new_corrections=[80, 100])
    rig.learns_from(95)  # 80 corrections were not enough to learn; 100 are
    first = fakes.trigger()
    rig.run(first)
    second = rig.topic.published[0]
    assert [r for r, _ in rig.results()] == ["rejected", "promoted"]
    assert [v for _, v in rig.results()] == [version_for(first.trigger_id), version_for(second.trigger_id)]
    assert rig.registry.get("qa", version_for(first.trigger_id)).status == "rejected"  # each attempt immutable
    assert rig.replica.route_of() == (version_for(second.trigger_id), "")
    detail = rig.outcomes.all()[0]["detail"]
    assert "Gate REJECTED on exact_match, margin_over_serving" in detail and "Data: " in detail
    assert "80 corrections" in detail
    assert "Next: attempt 2 of 3" in detail and "100 corrections are in" in detail
    assert rig.trained == [80, 100] and rig.after_rejection("retry") == 1


def test_without_new_corrections_the_attempt_is_skipped_and_the_episode_ends(tmp_path: Path) -> None:
    rig = Rig(tmp_path, new_corrections=[80])  # nobody sends more
    rig.run(fakes.trigger())
    assert [r for r, _ in rig.results()] == ["rejected", "skipped"]
    assert "80 corrections, 100 wanted" in rig.outcomes.all()[1]["detail"]
    assert rig.trained == [80] and len(rig.topic.published) == 1
    assert (rig.after_rejection("retry"), rig.after_rejection("no_new_evidence")) == (1, 1)


def test_attempts_are_bounded_per_episode(tmp_path: Path) -> None:
    rig = Rig(tmp_path, retries=2, new_corrections=[80, 100, 120, 140])  # never learns
    rig.run(fakes.trigger())
    assert [r for r, _ in rig.results()] == ["rejected", "rejected", "rejected"]
    assert "Next: nothing" in rig.outcomes.all()[2]["detail"]
    assert len(rig.topic.published) == 2 and rig.trained == [80, 100, 120]
    assert (rig.after_rejection("retry"), rig.after_rejection("gave_up")) == (2, 1)


def test_a_follow_up_that_cannot_be_published_is_raised_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path, retries=1, new_corrections=[80, 100])
    rig.learns_from(95)
    rig.topic.fail_publish = 1
    rig.topic.raw.seek = lambda tp, offset: rig.topic.records.insert(0, fakes.record(first, 0))
    first = fakes.trigger()
    rig.run(first)
    assert [r for r, _ in rig.results()] == ["rejected", "promoted"]
    assert rig.trained == [80, 100]  # the redone run resumed from its version: trained once
    assert rig.topic.commits.count(1) == 1 and rig.after_rejection("retry") == 1
