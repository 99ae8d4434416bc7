"""The monitor's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from driftloop.core.metrics._common import LATENCY_BUCKETS


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
        self.drift_tests = Counter(
            "driftloop_monitor_drift_tests_total", "Drift tests run on closed windows, by verdict (result: drift, "
            "no_drift): the count of drifted windows, where the gauges show only the latest.",
            [*signal, "result"], registry=registry,
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
        self.embeddings = Counter(
            "driftloop_monitor_embeddings_total", "Prompt embeddings the drift test used, by source (model: "
            "computed, cache: a prompt seen before, EMBED_CACHE_SIZE).", ["source"], registry=registry,
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
            "driftloop_monitor_episode_active", "1 while a drift/quality episode is open (or, after its promotion, "
            "followed up until the stream is back to normal).", stream,
            registry=registry,
        )
        self.triggers = Counter(
            "driftloop_monitor_retrain_triggers_total", "RetrainTriggers published.", stream, registry=registry,
        )
        self.follow_ups = Counter(
            "driftloop_monitor_follow_up_rounds_total", "After a promotion that answered an episode: rounds raised "
            "because quality stayed worse than before the change (raised), episodes back to normal (recovered), "
            "and episodes that ran out of rounds still worse (exhausted).", [*stream, "result"], registry=registry,
        )
        # Slices (core/slices.py): a stream per slice of an alias; its own families, so the alias-level
        # series above keep their meaning (no double counting) and their alerts stay as they are.
        sliced = [*stream, "slice"]
        self.slice_predictions = Counter(
            "driftloop_monitor_slice_predictions_total", "Predictions analysed per slice (lang=..., or a declared "
            "request tag's value), by outcome (ok, error).", [*sliced, "outcome"], registry=registry,
        )
        self.slice_rate = Gauge(
            "driftloop_monitor_slice_rate", "Latest rate signal of a slice (as driftloop_monitor_rate).",
            [*sliced, "detector"], registry=registry,
        )
        self.slice_detected = Gauge(
            "driftloop_monitor_slice_drift_detected", "1 when a slice's latest window drifted (its own reference).",
            [*sliced, "detector"], registry=registry,
        )
        self.slice_windows_over = Gauge(
            "driftloop_monitor_slice_windows_over", "Consecutive windows a slice's signal has been over its "
            "threshold.", [*sliced, "detector"], registry=registry,
        )
        self.slice_episode_active = Gauge(
            "driftloop_monitor_slice_episode_active", "1 while a slice has an episode open or followed up.",
            sliced, registry=registry,
        )
        self.slice_overflow = Counter(
            "driftloop_monitor_slice_overflow_total", "Predictions of a slice beyond MAX_SLICES per alias: analysed "
            "for the alias only.", stream, registry=registry,
        )
        self.lag = Gauge(
            "driftloop_monitor_consumer_lag", "Records behind the end of each consumed topic.", ["topic"],
            registry=registry,
        )
        self.detector_seconds = Histogram(
            "driftloop_monitor_detector_duration_seconds", "Time to run one test (or embed one batch).",
            ["detector"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry,
        )
        self.stage_seconds = Counter(
            "driftloop_monitor_stage_seconds", "Time the consumer loop spent in each stage (kafka: poll, fetch, "
            "decode and offset commit; handle: validation, routing, the join; embedding; streams: windows, drift "
            "tests, policy; checkpoint: triggers, state and offsets made durable; other: rollouts, lag).",
            ["stage"], registry=registry,
        )
        self.embed_sample_rate = Gauge(
            "driftloop_monitor_embedding_sample_rate", "Share of window prompts sampled for embedding (lowered "
            "under lag; reference prompts are always embedded).",
            registry=registry,
        )
        self.info = Info("driftloop_monitor", "Drift backend and windows.", registry=registry)
