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
    """The pipeline's rollout, reduced to its steps (canary → promote or rollback)."""
    step = journal.last()
    if step is None:
        route = rollouts.client.route("qa")
        step = rollouts.take(journal, rollouts.plan("qa", "canary", route.stable_version, "v2", 0.2), "v2")
    else:
        step = rollouts.finish(journal, "v2")
    if step.action == "canary":
        action, stable = ("promote", "v2") if verdict else ("rollback", step.stable)
        step = rollouts.take(journal, rollouts.plan("qa", action, stable), "v2")
    return step.action


@pytest.mark.parametrize("crash_on", [None, "canary", "promoted", "rolled_back"])
@pytest.mark.parametrize("verdict", [True, False])
def test_a_run_stopped_after_any_step_ends_consistent(tmp_path: Path, crash_on: str | None, verdict: bool) -> None:
    replica = Replica("v1")
    reg = _registry(tmp_path, crash_on)
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1)
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
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1)
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
    rollouts = Rollouts(replica, replica, reg, apply_timeout_s=1)
    journal = Journal(tmp_path / "rollout.json")
    journal.append(rollouts.plan("qa", "canary", "v1", "v2", 0.2))
    replica.r = inference_pb2.AdapterRoute(adapter_alias="qa", stable_version="v1", generation=5)
    step = rollouts.finish(journal, "v2")
    assert step.generation == 6 and replica.r.canary_version == "v2"
    assert reg.get("qa", "v2").status == "canary"
