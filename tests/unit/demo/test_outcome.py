"""The loop's records as the report shows them: the trigger, the versions' histories, the targets."""

from __future__ import annotations

from pathlib import Path

from driftloop.core.timestamps import timestamp
from driftloop.demo import outcome
from driftloop.demo.timeline import Timeline
from driftloop.retrainer.registry import Version
from driftloop.v1 import events_pb2


def _trigger(created: float) -> events_pb2.RetrainTrigger:
    t = events_pb2.RetrainTrigger(trigger_id="t-1", reason="sustained input drift", prediction_count=200,
                                  feedback_count=120, negative_feedback_count=60)
    t.created_time.CopyFrom(timestamp(created))
    t.evidence.add(signal="input_embedding", statistic=0.03, threshold=0.01, p_value=0.0)
    return t


def _version(name: str, *statuses: tuple[str, float], **metadata) -> Version:
    history = [{"status": s, "time": t, "reason": f"because {s}"} for s, t in statuses]
    return Version("qa", name, Path("/nowhere"), metadata, history)


def test_trigger_summary_counts_from_the_change() -> None:
    assert outcome.trigger_summary(_trigger(1015.04), 1000.0) == {
        "trigger_id": "t-1", "reason": "sustained input drift", "created_s_after_change": 15.0,
        "predictions": 200, "feedback": 120, "negative_feedback": 60,
        "signals": [{"signal": "input_embedding", "statistic": 0.03, "threshold": 0.01, "p_value": 0.0}]}


def test_the_first_trigger_goes_on_the_timeline_when_it_was_created() -> None:
    tl = Timeline(1000.0, echo=False)
    assert outcome.record_trigger(tl, [], 1000.0) is None
    summary = outcome.record_trigger(tl, [_trigger(1020.0), _trigger(1090.0)], 1000.0)
    assert summary["created_s_after_change"] == 20.0
    assert tl.events == [{"t": 20.0, "event": "trigger (from the topic)", "detail": "sustained input drift"}]


def test_every_status_goes_on_the_timeline_and_the_last_final_version_wins() -> None:
    tl = Timeline(1000.0, echo=False)
    versions = [_version("r-1", ("candidate", 1100.0), ("rejected", 1150.0)),
                _version("r-2", ("candidate", 1200.0), ("canary", 1210.0), ("promoted", 1300.0)),
                _version("r-3", ("candidate", 1400.0))]
    final = outcome.record_versions(tl, versions)
    assert final.version == "r-2"
    assert [(e["t"], e["event"]) for e in tl.events] == [
        (100.0, "version r-1: candidate"), (150.0, "version r-1: rejected"), (200.0, "version r-2: candidate"),
        (210.0, "version r-2: canary"), (300.0, "version r-2: promoted"), (400.0, "version r-3: candidate")]
    assert outcome.record_versions(tl, [_version("r-4", ("candidate", 1.0))]) is None


def test_version_summary() -> None:
    v = _version("r-2", ("promoted", 1.0), gate_summary="ok", gate={"checks": {"margin": 0.4}},
                 dataset={"corrections": 300}, training={"steps": 200, "seconds": 50, "other": 1})
    assert outcome.version_summary(v) == {
        "name": "r-2", "history": v.history, "gate_summary": "ok", "gate_checks": {"margin": 0.4},
        "dataset": {"corrections": 300},
        "training": {"steps": 200, "best_step": None, "best_val_loss": None, "stopped_early": None, "seconds": 50,
                     "fresh_share": None}}


def _acc(changed: float, unchanged: float) -> dict:
    return {"changed": {"accuracy": changed}, "unchanged": {"accuracy": unchanged}}


def test_targets() -> None:
    assert outcome.targets_met(_acc(0.1, 0.9), _acc(0.9, 0.89))
    assert not outcome.targets_met(_acc(0.3, 0.9), _acc(0.9, 0.9))  # v0 already knew the new world
    assert not outcome.targets_met(_acc(0.1, 0.9), _acc(0.8, 0.9))  # not learnt well enough
    assert not outcome.targets_met(_acc(0.1, 0.9), _acc(0.9, 0.87))  # forgot what did not change
    assert outcome.accuracy_line(_acc(0.1, 0.9)) == "changed facts 10.0%, unchanged facts 90.0%"
