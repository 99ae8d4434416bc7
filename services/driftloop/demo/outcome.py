"""What the loop produced, read once after it ended and turned into the report's summary: the trigger
(from its topic) and the version the retrainer registered (its history, dataset, training, gate)."""

from __future__ import annotations

from collections.abc import Iterable

from driftloop.core.settings import KafkaSettings
from driftloop.core.timestamps import seconds
from driftloop.core.topics import RETRAIN_TRIGGERS
from driftloop.demo.observer import FINAL
from driftloop.demo.timeline import Timeline
from driftloop.retrainer.collect import scan_events
from driftloop.retrainer.registry import Version
from driftloop.v1 import events_pb2

TRAINING_KEYS = ("steps", "best_step", "best_val_loss", "stopped_early", "seconds", "fresh_share")


def read_triggers(kafka: KafkaSettings, since: float) -> list[events_pb2.RetrainTrigger]:
    return list(scan_events(kafka, RETRAIN_TRIGGERS, since, events_pb2.RetrainTrigger))


def trigger_summary(trigger: events_pb2.RetrainTrigger, change_t: float) -> dict:
    """The trigger as the report shows it; ``change_t``: when the world changed (epoch s)."""
    return {
        "trigger_id": trigger.trigger_id, "reason": trigger.reason,
        "created_s_after_change": round(seconds(trigger.created_time) - change_t, 1),
        "predictions": trigger.prediction_count, "feedback": trigger.feedback_count,
        "negative_feedback": trigger.negative_feedback_count,
        "signals": [{"signal": e.signal, "statistic": e.statistic, "threshold": e.threshold, "p_value": e.p_value}
                    for e in trigger.evidence]}


def record_trigger(timeline: Timeline, triggers: list[events_pb2.RetrainTrigger], change_t: float) -> dict | None:
    """The first trigger after the change, on the timeline at the time it was created."""
    if not triggers:
        return None
    t = triggers[0]
    timeline.event("trigger (from the topic)", t.reason, seconds(t.created_time))
    return trigger_summary(t, change_t)


def record_versions(timeline: Timeline, versions: Iterable[Version]) -> Version | None:
    """Each status every version went through, on the timeline at the time it was recorded; returns
    the last version that reached a final status (promoted, rejected, rolled_back)."""
    final = None
    for v in versions:
        for h in v.history:
            timeline.event(f"version {v.version}: {h['status']}", h.get("reason", "")[:160], h["time"])
        if v.status in FINAL:
            final = v
    return final


def version_summary(v: Version) -> dict:
    meta = v.metadata
    return {"name": v.version, "history": v.history, "gate_summary": meta.get("gate_summary", ""),
            "gate_checks": meta.get("gate", {}).get("checks", {}), "dataset": meta.get("dataset", {}),
            "training": {k: meta.get("training", {}).get(k) for k in TRAINING_KEYS}}


def targets_met(before: dict, after: dict) -> bool:
    """The demo's targets: v0 wrong on what changed, the new version right on it, nothing else lost."""
    return (before["changed"]["accuracy"] < 0.30 and after["changed"]["accuracy"] >= 0.85
            and after["unchanged"]["accuracy"] >= before["unchanged"]["accuracy"] - 0.02)


def accuracy_line(ev: dict) -> str:
    return f"changed facts {ev['changed']['accuracy']:.1%}, unchanged facts {ev['unchanged']['accuracy']:.1%}"
