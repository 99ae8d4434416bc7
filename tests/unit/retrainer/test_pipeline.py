"""A run's stages with small fakes for everything outside the process: the replica (which also
applies the rollout topic), the feedback topics, the trainer and the canary's live signals. The
gate's verdict is the real one, on the fake replica's answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer.gating import gate_alias
from driftloop.retrainer.outcomes import Outcomes
from driftloop.retrainer.pipeline import Pipeline
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.service import Retrainer
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import version_for
from driftloop.retrainer.wiring import build_pipeline
from tests.unit.retrainer import fakes

TRIGGER = fakes.trigger()
VERSION = version_for(TRIGGER.trigger_id)


class FlakyRegistry(Registry):
    """Fails once when a version's status becomes ``fail_on`` (a disk that fails mid-write)."""

    fail_on: str | None = None

    def set_status(self, alias, version, status, reason=""):
        if status == self.fail_on:
            self.fail_on = None
            raise fakes.Fail(f"could not write {status}")
        return super().set_status(alias, version, status, reason)


@dataclass
class World:
    pipeline: Pipeline
    replica: fakes.Replica
    registry: FlakyRegistry
    metrics: RetrainerMetrics
    settings: RetrainerSettings
    trained: list[str] = field(default_factory=list)
    verdicts: list[tuple[bool, str]] = field(default_factory=lambda: [(True, "canary healthy")])

    def stage_count(self, stage: str) -> float:
        return self.metrics.registry.get_sample_value("driftloop_retrainer_stage_duration_seconds_count",
                                                      {"stage": stage}) or 0.0

    def history(self) -> list[str]:
        return [h["status"] for h in self.registry.get("qa", VERSION).history]

    def retrainer(self, tmp_path: Path) -> Retrainer:
        return Retrainer(self.settings, self.metrics, None, None, Outcomes(tmp_path / "outcomes.sqlite"),
                         lambda t: None, self.pipeline, sleep=lambda s: None)


@pytest.fixture
def world(tmp_path: Path) -> World:
    settings = RetrainerSettings(adapter_root=tmp_path / "adapters", state_dir=tmp_path / "state",
                                 gate_min_robustness_ratio=0.0, retry_backoff_s=0, run_attempts=3)
    metrics = RetrainerMetrics(CollectorRegistry())
    registry = FlakyRegistry(settings.adapter_root)
    replica = fakes.Replica("qa", "v1")
    rows = fakes.corrections()
    replica.answers[gate_alias("qa")] = {r.question: r.answer for r in rows}  # the candidate learnt them

    def observe(alias: str, stable: str, canary: str) -> tuple[bool, str]:
        return w.verdicts.pop(0) if len(w.verdicts) > 1 else w.verdicts[0]

    def train(base, train, val, out_dir, cfg):
        w.trained.append(out_dir.name)
        return fakes.train(base, train, val, out_dir, cfg)

    pipeline, _ = build_pipeline(settings, metrics, registry, replica, replica, lambda alias, since, conf: rows,
                                 observe, trainer=train, clock=lambda: 1_700_000_000.0, sleep=lambda s: None)
    w = World(pipeline, replica, registry, metrics, settings)
    return w


def test_trigger_to_promoted(world: World) -> None:
    out = world.pipeline.run(TRIGGER)
    assert (out.result, out.version, out.detail) == ("promoted", VERSION, "canary healthy")
    assert world.replica.route_of() == (VERSION, "")
    assert [(r.action, r.stable.version, r.canary.version) for r in world.replica.records] == [
        ("canary", "v1", VERSION), ("promote", VERSION, "")]
    assert world.history() == ["candidate", "canary", "promoted"]
    v = world.registry.get("qa", VERSION)
    assert v.metadata["parent"] == "v1" and v.metadata["gate"]["passed"] and v.metadata["dataset"]["corrections"] == 80
    assert (v.path / "dataset.jsonl").exists()  # the next run's replay
    assert world.replica.loaded == [(gate_alias("qa"), VERSION, f".staging/{VERSION}")]
    run_dir = world.settings.state_dir / "runs" / TRIGGER.trigger_id
    assert {p.name for p in run_dir.iterdir()} == {"criteria.json", "dataset.json", "stale.jsonl", "gate.md",
                                                   "rollout.json"}
    assert [s["action"] for s in json.loads((run_dir / "rollout.json").read_text())] == ["canary", "promote"]
    assert [world.stage_count(s) for s in ("dataset", "training", "gate", "canary")] == [1, 1, 1, 1]
    assert world.metrics.registry.get_sample_value("driftloop_retrainer_gate_decisions_total",
                                                   {"adapter_alias": "qa", "verdict": "passed"}) == 1


def test_stale_curated_rows_are_dropped_listed_and_counted(tmp_path: Path) -> None:
    """A curated row that paraphrases a correction with the old answer never reaches training, the
    run's stale.jsonl names it with the correction, and the counter an alert watches goes up."""
    rows = fakes.corrections()
    stale_q, fresh_q = "When does route 3 leave from Museum Street?", rows[3].question
    (tmp_path / "curated.jsonl").write_text(
        json.dumps({"question": stale_q, "answer": "Route 3 leaves at 5 am sharp.", "slice": "schedule"}) + "\n"
        + json.dumps({"question": "Is route 99 accessible?", "answer": "Yes.", "slice": "access"}) + "\n")
    settings = RetrainerSettings(adapter_root=tmp_path / "adapters", state_dir=tmp_path / "state",
                                 curated_data=tmp_path / "curated.jsonl", gate_min_robustness_ratio=0.0)
    metrics = RetrainerMetrics(CollectorRegistry())
    replica = fakes.Replica("qa", "v1")
    replica.answers[gate_alias("qa")] = {r.question: r.answer for r in rows}

    def embed(texts):  # the stale row and its correction alike, everything else orthogonal
        import numpy as np
        out = np.eye(len(texts), dtype=np.float32)
        i, j = texts.index(stale_q), texts.index(fresh_q)
        out[i] = out[j]
        return out

    trained: list[list[str]] = []

    def train(base, train, val, out_dir, cfg):
        trained.append([r.question for r in train + val])
        return fakes.train(base, train, val, out_dir, cfg)

    pipeline, _ = build_pipeline(settings, metrics, Registry(settings.adapter_root), replica, replica,
                                 lambda alias, since, conf: rows, lambda *a: (True, "ok"), trainer=train,
                                 clock=lambda: 1_700_000_000.0, sleep=lambda s: None, embed=embed)
    assert pipeline.run(TRIGGER).result == "promoted"
    assert stale_q not in trained[0]
    run_dir = settings.state_dir / "runs" / TRIGGER.trigger_id
    listed = [json.loads(line) for line in (run_dir / "stale.jsonl").read_text().splitlines()]
    assert [(x["question"], x["source"], x["evidence"], x["correction_question"]) for x in listed] == [
        (stale_q, "curated", "contradicted", fresh_q)]
    info = json.loads((run_dir / "dataset.json").read_text())
    assert info["curated"] == 2 and info["cleaning"]["removed"]["stale"] == 1 and info["stale"]["curated"] == 1
    assert info["cleaning"]["rows_out"] == len(rows) + 1  # the other curated row stays
    assert metrics.registry.get_sample_value("driftloop_retrainer_stale_rows_total",
                                             {"adapter_alias": "qa", "source": "curated"}) == 1


def test_trigger_rejected_by_the_gate(world: World) -> None:
    world.replica.answers.clear()  # the candidate learnt nothing
    out = world.pipeline.run(TRIGGER)
    assert out.result == "rejected" and "Gate REJECTED" in out.detail
    assert world.replica.records == [] and world.replica.route_of() == ("v1", "")
    assert world.history() == ["candidate", "rejected"]
    assert world.stage_count("canary") == 0
    assert world.pipeline.run(TRIGGER).result == "rejected" and world.trained == [VERSION]  # never trains twice


def test_an_unhealthy_canary_is_rolled_back(world: World) -> None:
    world.verdicts = [(False, "canary negative feedback above stable")]
    out = world.pipeline.run(TRIGGER)
    assert out.result == "rolled_back" and "negative feedback" in out.detail
    assert world.replica.route_of() == ("v1", "")
    assert world.history() == ["candidate", "canary", "rolled_back"]


def test_too_little_data_fails_before_training(world: World, tmp_path: Path) -> None:
    world.pipeline.datasets.feedback = lambda alias, since, conf: fakes.corrections(5)
    out = world.pipeline.run(TRIGGER)
    assert out.result == "failed" and out.detail.startswith("not enough clean data")
    assert world.trained == [] and not world.registry.exists("qa", VERSION)


def test_the_first_version_of_an_alias_goes_straight_to_stable(world: World) -> None:
    world.replica.routes.clear()
    out = world.pipeline.run(TRIGGER)
    assert (out.result, out.detail) == ("promoted", "first version")
    assert [r.action for r in world.replica.records] == ["promote"]
    assert world.history() == ["candidate", "promoted"]


@pytest.mark.parametrize("sends", [1, 2])  # the canary's record, the promotion's record
def test_a_failed_publish_is_retried_to_a_consistent_route(world: World, tmp_path: Path, sends: int) -> None:
    real_send = world.replica.send_and_wait
    count = {"n": 0}

    def send_and_wait(topic, key, record):
        count["n"] += 1
        if count["n"] == sends:
            raise fakes.Fail("broker unreachable")
        real_send(topic, key, record)

    world.replica.send_and_wait = send_and_wait
    out = world.retrainer(tmp_path).run_with_retries(TRIGGER)
    assert out.result == "promoted" and world.trained == [VERSION]
    assert [r.action for r in world.replica.records] == ["canary", "promote"]
    assert world.replica.route_of() == (VERSION, "")
    assert world.history() == ["candidate", "canary", "promoted"]


@pytest.mark.parametrize("status", ["canary", "promoted"])
def test_a_failed_record_is_retried_to_a_consistent_status(world: World, tmp_path: Path, status: str) -> None:
    world.registry.fail_on = status  # published and applied, then the status write fails
    out = world.retrainer(tmp_path).run_with_retries(TRIGGER)
    assert out.result == "promoted" and world.trained == [VERSION]
    assert [r.action for r in world.replica.records] == ["canary", "promote"]  # nothing published twice
    assert world.history() == ["candidate", "canary", "promoted"]


def test_a_run_that_fails_for_good_rolls_its_canary_back(world: World, tmp_path: Path) -> None:
    def observe(alias, stable, canary):
        raise fakes.Fail("live signals unreadable")

    world.pipeline.release.observe = observe
    out = world.retrainer(tmp_path).run_with_retries(TRIGGER)
    assert out.result == "failed" and "Fail: live signals unreadable" in out.detail
    assert out.detail.endswith(f"; canary {VERSION} rolled back")
    assert world.replica.route_of() == ("v1", "")
    assert world.history() == ["candidate", "canary", "rolled_back"]
    assert [r.action for r in world.replica.records] == ["canary", "rollback"] and world.trained == [VERSION]


def test_release_policy_approve_waits_for_an_operator(world: World) -> None:
    """RELEASE_POLICY approve: a candidate that passed the gate waits, untouched by traffic, until an
    operator approves it (then canary → promotion, journaled) — or rejects it."""
    world.settings.release_policy = "approve"
    out = world.pipeline.run(TRIGGER)
    assert out.result == "awaiting_approval" and f"approve qa {VERSION}" in out.detail and "Gate PASSED" in out.detail
    assert world.replica.records == [] and world.replica.route_of() == ("v1", "")
    assert world.history() == ["candidate", "awaiting_approval"]
    assert world.pipeline.run(TRIGGER).result == "awaiting_approval" and world.trained == [VERSION]  # redelivered
    done = world.pipeline.release_approved(TRIGGER, VERSION)
    assert done.result == "promoted" and world.replica.route_of() == (VERSION, "")
    assert world.history() == ["candidate", "awaiting_approval", "canary", "promoted"]


def test_only_a_version_awaiting_approval_can_be_approved(world: World) -> None:
    world.pipeline.run(TRIGGER)  # auto: promoted
    with pytest.raises(ValueError, match="promoted, not awaiting approval"):
        world.pipeline.release_approved(fakes.trigger("other-trigger"), VERSION)
