"""Every Prometheus metric the project exports, declared in one place.

Names carry the ``driftloop_`` prefix and base units (seconds, bytes); counters end in ``_total``;
labels are bounded (service, model, adapter alias/version, detector, stream, status) and never
carry request or user ids. Each service builds its own set on its own registry, so a process
exports only its metrics and tests can use fresh registries.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

# `_created` series double the scrape size and no dashboard or alert uses them.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# What the retrainer does with a consumed trigger; the refusals are dead-lettered with the same name.
TRIGGER_RESULTS = ("accepted", "duplicate", "invalid", "invalid_identifier", "stale", "unknown_alias")


class EventMetrics:
    """The event pipeline (spool → Kafka) of any producing service."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.emitted = Counter(
            "driftloop_events_emitted_total", "Events acknowledged by Kafka (acks=all).",
            ["service", "topic"], registry=registry,
        )
        self.spooled_events = Gauge(
            "driftloop_events_spooled", "Events in the on-disk spool not yet acknowledged by Kafka.",
            ["service"], registry=registry,
        ).labels(service)
        self.spooled_bytes = Gauge(
            "driftloop_events_spool_bytes", "Bytes of events in the on-disk spool.",
            ["service"], registry=registry,
        ).labels(service)
        self.dropped = Counter(
            "driftloop_events_dropped_total", "Events dropped, by reason (spool_full: oldest dropped; shutdown: "
            "undelivered when a pod with an ephemeral spool stopped).",
            ["service", "reason"], registry=registry,
        )
        # Exported at 0 from the start: increase() (alert DriftloopEventsDropped, the dashboard)
        # sees the first drop, and "no drops" reads 0, not "no data".
        self.dropped.labels(service, "spool_full")
        self.dropped.labels(service, "shutdown")
        self.rejected = Counter(
            "driftloop_events_rejected_total", "Events Kafka refused for good (e.g. MessageSizeTooLargeError), "
            "moved out of the spool's head so the rest keeps flowing.", ["service", "reason"], registry=registry,
        )
        self.rejected.labels(service, "MessageSizeTooLargeError")  # at 0: the first rejection is an increase()
        self.set_aside = Gauge(
            "driftloop_events_set_aside", "Rejected events kept aside in the spool for inspection.",
            ["service"], registry=registry,
        ).labels(service)
        self.kafka_up = Gauge(
            "driftloop_kafka_up", "1 when the last Kafka delivery attempt succeeded.",
            ["service"], registry=registry,
        ).labels(service)
        self.service = service


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.registry = registry
        self.model = model
        self.requests = Counter(
            "driftloop_inference_requests_total", "Inference RPCs by method, adapter alias and status code.",
            ["method", "model", "adapter_alias", "code"], registry=registry,
        )
        self.latency = Histogram(
            "driftloop_inference_request_duration_seconds", "End-to-end latency of generation RPCs.",
            ["method", "model", "adapter_alias"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.ttft = Histogram(
            "driftloop_inference_time_to_first_token_seconds", "Time to the first generated token.",
            ["model", "adapter_alias"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.tokens = Counter(
            "driftloop_inference_tokens_total", "Tokens processed, by kind (prompt, completion).",
            ["model", "adapter_alias", "kind"], registry=registry,
        )
        self.in_flight = Gauge(
            "driftloop_inference_in_flight_requests", "Generation requests being served.",
            ["model"], registry=registry,
        ).labels(model)
        self.adapter_version = Gauge(
            "driftloop_inference_adapter_version_info",
            "1 for each loaded adapter version; role is stable, canary, draining or loaded.",
            ["adapter_alias", "version", "role"], registry=registry,
        )
        self.canary_weight = Gauge(
            "driftloop_inference_canary_weight", "Share of the alias's traffic routed to its canary.",
            ["adapter_alias"], registry=registry,
        )
        self.adapter_rejections = Counter(
            "driftloop_inference_adapter_rejections_total", "Adapters refused by validation before load.",
            ["reason"], registry=registry,
        )
        self.feedback = Counter(
            "driftloop_inference_feedback_total", "Feedback received, by rating.",
            ["rating"], registry=registry,
        )
        self.rollouts_applied = Counter(
            "driftloop_inference_rollouts_applied_total", "Adapter rollout records applied from Kafka, by result.",
            ["result"], registry=registry,
        )
        self.unexpected_errors = Counter(
            "driftloop_inference_unexpected_errors_total", "RPCs that failed on an error no rule foresaw (a "
            "bug: answered INTERNAL and logged with its traceback), by method.", ["method"], registry=registry,
        )
        self.info = Info("driftloop_inference_engine", "Engine and base model served.", registry=registry)
        self.events = EventMetrics(registry, "inference")


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        stream = ["model", "adapter_alias"]
        signal = [*stream, "detector"]
        self.events = Counter(
            "driftloop_monitor_events_total", "Records consumed, by topic and result (processed, duplicate, "
            "dead_lettered; predictions not analysed: ignored, client_error, unrouted, stream_limit; feedback: "
            "repeated_verdict, revised_verdict).", ["topic", "result"], registry=registry,
        )
        self.dlq = Counter(
            "driftloop_monitor_dead_letters_total", "Records sent to the dead-letter topic, by reason.",
            ["reason"], registry=registry,
        )
        self.statistic = Gauge(
            "driftloop_monitor_drift_statistic", "Latest test statistic (MMD², KS distance, chi²).",
            signal, registry=registry,
        )
        self.statistic_threshold = Gauge(
            "driftloop_monitor_drift_statistic_threshold", "Statistic above which the test detects drift "
            "(where the test defines one: MMD's permutation quantile).", signal, registry=registry,
        )
        self.p_value = Gauge(
            "driftloop_monitor_drift_p_value", "Latest p-value of the drift test.", signal, registry=registry,
        )
        self.p_value_threshold = Gauge(
            "driftloop_monitor_drift_p_value_threshold", "p-value below which the test detects drift "
            "(after correction).", signal, registry=registry,
        )
        self.detected = Gauge(
            "driftloop_monitor_drift_detected", "1 when the latest window drifted.", signal, registry=registry,
        )
        self.windows_over = Gauge(
            "driftloop_monitor_signal_windows_over", "Consecutive windows the signal has been over its threshold.",
            signal, registry=registry,
        )
        self.window_samples = Gauge(
            "driftloop_monitor_window_samples", "Samples in the latest test window (or rate window).",
            signal, registry=registry,
        )
        self.last_test = Gauge(
            "driftloop_monitor_last_test_timestamp_seconds", "When the signal was last evaluated.",
            signal, registry=registry,
        )
        self.reference_samples = Gauge(
            "driftloop_monitor_reference_samples", "Predictions in the stream's reference set.",
            stream, registry=registry,
        )
        self.rate = Gauge(
            "driftloop_monitor_rate", "Latest rate signal: negative_feedback_rate and error_rate as ratios, "
            "latency_p95 in seconds.", signal, registry=registry,
        )
        self.rate_threshold = Gauge(
            "driftloop_monitor_rate_threshold", "Threshold of each rate signal.", signal, registry=registry,
        )
        self.predictions = Counter(
            "driftloop_monitor_predictions_total", "Predictions processed, by outcome (ok, error).",
            [*stream, "outcome"], registry=registry,
        )
        self.feedback = Counter(
            "driftloop_monitor_feedback_total", "Feedback joined to its prediction, by rating.",
            [*stream, "rating"], registry=registry,
        )
        self.feedback_unmatched = Counter(
            "driftloop_monitor_feedback_unmatched_total", "Feedback whose prediction never arrived within the "
            "join TTL (reason expired).", ["reason"], registry=registry,
        )
        self.feedback_unmatched.labels("expired")  # at 0 from the start, like events dropped
        self.latency = Histogram(
            "driftloop_monitor_prediction_latency_seconds", "Request latency reported by prediction events.",
            stream, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.episode_active = Gauge(
            "driftloop_monitor_episode_active", "1 while a drift/quality episode is open.", stream,
            registry=registry,
        )
        self.triggers = Counter(
            "driftloop_monitor_retrain_triggers_total", "RetrainTriggers published.", stream, registry=registry,
        )
        self.lag = Gauge(
            "driftloop_monitor_consumer_lag", "Records behind the end of each consumed topic.", ["topic"],
            registry=registry,
        )
        self.detector_seconds = Histogram(
            "driftloop_monitor_detector_duration_seconds", "Time to run one test (or embed one batch).",
            ["detector"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry,
        )
        self.embed_sample_rate = Gauge(
            "driftloop_monitor_embedding_sample_rate", "Share of window prompts sampled for embedding (lowered "
            "under lag; reference prompts are always embedded).",
            registry=registry,
        )
        self.info = Info("driftloop_monitor", "Drift backend and windows.", registry=registry)


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
        self.in_progress.labels(alias)
