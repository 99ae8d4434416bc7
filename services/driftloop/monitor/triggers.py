"""A TriggerDecision as the RetrainTrigger record the retrainer consumes: what fired, the evidence
of every evaluated signal (statistic, threshold, p-value, samples), the window and its counts."""

from __future__ import annotations

from driftloop.core.timestamps import timestamp
from driftloop.monitor.policy import TriggerDecision
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import RATE_SIGNALS, SignalState
from driftloop.v1 import events_pb2


def retrain_trigger(d: TriggerDecision, s: MonitorSettings, now: float) -> events_pb2.RetrainTrigger:
    trigger = events_pb2.RetrainTrigger(
        trigger_id=d.trigger_id, dedupe_key=d.dedupe_key, created_time=timestamp(now), model=d.model,
        adapter_alias=d.alias, adapter_version=d.version, window_start=timestamp(d.window_start),
        window_end=timestamp(d.window_end), prediction_count=d.predictions, feedback_count=d.feedback,
        negative_feedback_count=d.negatives, error_count=d.errors,
        reason=d.reason or (f"slice {d.slice}: " if d.slice else "") + "sustained or threshold signals: "
        + ", ".join(d.firing),
    )
    for name, sig in d.signals.items():
        evaluated = sig.value is not None and (name in RATE_SIGNALS or sig.result is not None)
        if evaluated:  # (a drift signal has no result between a reset and its next test)
            _add_evidence(trigger, name, sig, name in d.firing, s, d.thresholds.get(name))
    return trigger


def _add_evidence(trigger: events_pb2.RetrainTrigger, name: str, sig: SignalState, detected: bool,
                  s: MonitorSettings, threshold: float | None = None) -> None:
    ev = trigger.evidence.add(signal=name, statistic=float(sig.value), sample_count=sig.samples,
                              windows_over=sig.windows_over, detected=detected)
    r = sig.result
    if r is None:
        ev.threshold = s.rate_threshold(name) if threshold is None else threshold
        return
    ev.threshold = r.statistic_threshold if r.statistic_threshold is not None else r.p_threshold
    ev.p_value = r.p_value
