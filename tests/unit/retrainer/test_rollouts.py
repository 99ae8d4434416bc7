"""Rollout steps are journaled before they are published; a run that stops after any step and is
run again ends in a consistent route: never stable = canary, never a second canary of a version
already rolled back or promoted. The broker and the replica are small fakes here (the replica
applies what is published, as the rollout follower does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftloop.retrainer.registry import Registry
from driftloop.retrainer.rollouts import Journal, RolloutRefused, Rollouts
from driftloop.v1 import events_pb2, inference_pb2


class Replica:
    """Applies each published record newer than the route's generation (what the follower does)."""

    def __init__(self, stable: str) -> None:
        self.r = inference_pb2.AdapterRoute(adapter_alias="qa", stable_version=stable, generation=1)
        self.records: list[events_pb2.AdapterRollout] = []

    def send_and_wait(self, topic, key, record) -> None:
        self.records.append(record)
        assert record.stable.version != record.canary.version, "stable = canary published"
        if record.generation > self.r.generation:
            self.r = inference_pb2.AdapterRoute(adapter_alias="qa", stable_version=record.stable.version,
                                                canary_version=record.canary.version,
                                                canary_weight=record.canary_weight, generation=record.generation)

    def route(self, alias: str):
        return self.r


class Crash(Exception):
    pass


class CrashingRegistry(Registry):
    """Dies once, right after a step was published and before the version's status is written."""

    def __init__(self, root: Path, crash_on: str | None) -> None:
        super().__init__(root)
        self.crash_on = crash_on

    def set_status(self, alias, version, status, reason=""):
        if status == self.crash_on:
            self.crash_on = None
            raise Crash(status)
        return super().set_status(alias, version, status, reason)


def _registry(tmp_path: Path, crash_on: str | None) -> CrashingRegistry:
    reg = CrashingRegistry(tmp_path / "adapters", crash_on)
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "adapter_config.json").write_text("{}")
    reg.register("qa", "v2", staged, {"gate": {"passed": True}})
    return reg


def _run(rollouts: Rollouts, journal: Journal, verdict: bool) -> str:
    """The release of a run, reduced to its steps (canary → promote or rollback)."""
    step = journal.last()
    if step is None:
        step = rollouts.canary(journal, "qa", rollouts.client.route("qa").stable_version, "v2", 0.2)
    else:
        step = rollouts.resume(journal, "v2")
    if step.action == "canary":
        step = (rollouts.promote(journal, "qa", "v2") if verdict else
                rollouts.rollback(journal, "qa", step.stable, "v2"))
    return step.action


@pytest.mark.parametrize("crash_on", [None, "canary", "promoted", "rolled_back"])
@pytest.mark.parametrize("verdict", [True, False])
def test_a_run_stopped_after_any_step_ends_consistent(tmp_path: Path, crash_on: str | None, verdict: bool) -> None:
    replica = Replica("v1")
    reg = _registry(tmp_path, crash_on)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1, poll_s=0)
    journal = Journal(tmp_path / "rollout.json")
    try:
        _run(rollouts, journal, verdict)
    except Crash:
        _run(rollouts, journal, verdict)  # the retry, as run_with_retries does it
    final = "promoted" if verdict else "rolled_back"
    assert reg.get("qa", "v2").status == final
    assert [h["status"] for h in reg.get("qa", "v2").history] == ["candidate", "canary", final]
    route = replica.r
    assert (route.stable_version, route.canary_version) == (("v2", "") if verdict else ("v1", ""))
    canaries = [r for r in replica.records if r.canary.version == "v2"]
    assert len(canaries) == 1  # the canary went out once, whatever the crash
    assert all(r.stable.version != r.canary.version for r in replica.records)
    assert [s["action"] for s in json.loads(journal.path.read_text())] == ["canary", "promote" if verdict else
                                                                           "rollback"]


def test_a_finished_version_is_never_a_canary_again(tmp_path: Path) -> None:
    replica = Replica("v1")
    reg = _registry(tmp_path, None)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1, poll_s=0)
    reg.set_status("qa", "v2", "rolled_back", "earlier")
    with pytest.raises(RolloutRefused, match="never a canary again"):
        rollouts.plan("qa", "canary", "v1", "v2", 0.2)
    with pytest.raises(RolloutRefused, match="both"):
        rollouts.plan("qa", "canary", "v2", "v2", 0.2)
    assert replica.records == []


def test_a_step_superseded_before_it_applied_is_replanned(tmp_path: Path) -> None:
    """The route moved on (an operator's rollout) after the step was journaled but before it was
    published: the step goes out with a fresh generation instead of being ignored as stale."""
    replica = Replica("v1")
    reg = _registry(tmp_path, None)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1, poll_s=0)
    journal = Journal(tmp_path / "rollout.json")
    journal.append(rollouts.plan("qa", "canary", "v1", "v2", 0.2))
    replica.r = inference_pb2.AdapterRoute(adapter_alias="qa", stable_version="v1", generation=5)
    step = rollouts.resume(journal, "v2")
    assert step.generation == 6 and replica.r.canary_version == "v2"
    assert reg.get("qa", "v2").status == "canary"


class FailingReplica(Replica):
    """A broker that refuses the next ``fails`` sends (the record never reaches the replica)."""

    def __init__(self, stable: str, fails: int) -> None:
        super().__init__(stable)
        self.fails = fails

    def send_and_wait(self, topic, key, record) -> None:
        if self.fails:
            self.fails -= 1
            raise Crash("broker unreachable")
        super().send_and_wait(topic, key, record)


@pytest.mark.parametrize("verdict", [True, False])
def test_a_failed_publish_is_published_on_the_retry(tmp_path: Path, verdict: bool) -> None:
    replica = FailingReplica("v1", fails=1)
    reg = _registry(tmp_path, None)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1, poll_s=0)
    journal = Journal(tmp_path / "rollout.json")
    with pytest.raises(Crash):
        _run(rollouts, journal, verdict)
    assert replica.records == [] and reg.get("qa", "v2").status == "candidate"  # journaled, nothing else
    assert not journal.last().published
    _run(rollouts, journal, verdict)
    assert [r.action for r in replica.records] == ["canary", "promote" if verdict else "rollback"]
    assert reg.get("qa", "v2").status == ("promoted" if verdict else "rolled_back")


def test_a_step_the_replica_never_shows_fails_the_try(tmp_path: Path) -> None:
    class Deaf(Replica):
        def send_and_wait(self, topic, key, record) -> None:
            self.records.append(record)  # published, never applied

    replica = Deaf("v1")
    reg = _registry(tmp_path, None)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=0.05, poll_s=0.01)
    with pytest.raises(TimeoutError, match="did not apply the canary"):
        rollouts.canary(Journal(tmp_path / "rollout.json"), "qa", "v1", "v2", 0.2)
    assert reg.get("qa", "v2").status == "candidate"  # not recorded before it took effect


def test_by_hand_steps_publish_and_record_without_a_journal(tmp_path: Path) -> None:
    replica = Replica("v1")
    reg = _registry(tmp_path, None)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1, poll_s=0)
    rollouts.by_hand("promote", "qa", "v2")
    assert replica.r.stable_version == "v2" and reg.get("qa", "v2").status == "promoted"
    rollouts.by_hand("rollback", "qa", "v2")  # to the version already stable: published, nothing rolled back
    assert [r.action for r in replica.records] == ["promote", "rollback"]
    assert [h["status"] for h in reg.get("qa", "v2").history] == ["candidate", "promoted"]
    staged = tmp_path / "staged-v3"
    staged.mkdir()
    reg.register("qa", "v3", staged, {})
    rollouts.by_hand("promote", "qa", "v3")
    rollouts.by_hand("rollback", "qa", "v2")  # back to v2: v3, which served, is rolled back
    assert replica.r.stable_version == "v2" and reg.get("qa", "v3").status == "rolled_back"
    assert reg.get("qa", "v2").status == "promoted"
    with pytest.raises(FileNotFoundError):
        rollouts.by_hand("promote", "qa", "v9")
    assert not list(tmp_path.rglob("rollout.json"))
