"""The retrainer's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# What the retrainer does with a consumed trigger; the refusals are dead-lettered with the same name.
TRIGGER_RESULTS = ("accepted", "duplicate", "invalid", "invalid_identifier", "stale", "unknown_alias")


class RetrainerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.triggers = Counter(
            "driftloop_retrainer_triggers_total", "RetrainTriggers consumed, by result (accepted, duplicate, invalid, "
            "invalid_identifier, stale, unknown_alias).",
            ["result"], registry=registry,
        )
        self.runs = Counter(
            "driftloop_retrainer_runs_total", "Retraining runs finished, by outcome "
            "(promoted, rejected, rolled_back, failed).", ["adapter_alias", "outcome"], registry=registry,
        )
        self.in_progress = Gauge(
            "driftloop_retrainer_run_in_progress", "1 while a retraining run is in progress.", ["adapter_alias"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "driftloop_retrainer_stage_duration_seconds", "Duration of each stage of a run "
            "(dataset, training, gate, canary).", ["stage"],
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600), registry=registry,
        )
        self.gate = Counter(
            "driftloop_retrainer_gate_decisions_total", "Acceptance-gate verdicts (passed, rejected).",
            ["adapter_alias", "verdict"], registry=registry,
        )
        self.gate_score = Gauge(
            "driftloop_retrainer_gate_score", "Last gate measurement per metric and role (candidate, serving).",
            ["adapter_alias", "metric", "role"], registry=registry,
        )
        self.rollouts = Counter(
            "driftloop_retrainer_rollouts_total", "Rollout actions published (canary, promote, rollback).",
            ["adapter_alias", "action"], registry=registry,
        )
        self.dataset_rows = Gauge(
            "driftloop_retrainer_dataset_rows", "Rows of the last dataset, by split and by cleaning rule removed.",
            ["kind"], registry=registry,
        )
        self.after_rejection = Counter(
            "driftloop_retrainer_after_rejection_total", "What followed a gate rejection, per episode step: retry (the "
            "next attempt raised), gave_up (no attempt left), no_new_evidence (an attempt ended without the new "
            "corrections it waited for; the episode ends).", ["adapter_alias", "result"], registry=registry,
        )
        self.stale_rows = Counter(
            "driftloop_retrainer_stale_rows_total", "Rows dropped before training because a fresh correction "
            "contradicts them (retrainer/stale.py), by source (curated, replay, confirmed): data to fix at its source.",
            ["adapter_alias", "source"], registry=registry,
        )
        self.last_success = Gauge(
            "driftloop_retrainer_last_success_timestamp_seconds", "When a run last ended in a promotion.",
            ["adapter_alias"], registry=registry,
        )
        for result in TRIGGER_RESULTS:  # dashboards show 0, not "No data"
            self.triggers.labels(result)

    def track_alias(self, alias: str) -> None:
        """Create an alias's outcome series at 0, so the first failure is an increase() too."""
        for outcome in ("promoted", "rejected", "rolled_back", "failed"):
            self.runs.labels(alias, outcome)
        for verdict in ("passed", "rejected"):
            self.gate.labels(alias, verdict)
        for action in ("canary", "promote", "rollback"):
            self.rollouts.labels(alias, action)
        for result in ("retry", "gave_up", "no_new_evidence"):
            self.after_rejection.labels(alias, result)
        for source in ("curated", "replay", "confirmed"):
            self.stale_rows.labels(alias, source)
        self.in_progress.labels(alias)
