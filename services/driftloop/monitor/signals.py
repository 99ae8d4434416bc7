"""The monitor's signals, named once: the settings check ``trigger_signals`` against them, the
streams keep one state each, the exporter labels the gauges with them (``detector``), and the
dashboards and alerts select them by these names."""

from __future__ import annotations

from dataclasses import dataclass

from driftloop.monitor.backends import TestResult

# Prediction features, each a field of ``features.Features``, tested per window against the reference.
KS_SIGNALS = ("prompt_length", "response_length", "mean_logprob")  # numeric: two-sample KS
CHI2_SIGNALS = ("finish_reason", "empty_or_refusal")  # categorical: chi-squared
FEATURES = (*KS_SIGNALS, *CHI2_SIGNALS)
DRIFT_SIGNALS = ("input_embedding", *FEATURES)  # input_embedding: MMD on prompt embeddings
RATE_SIGNALS = ("negative_feedback_rate", "error_rate", "latency_p95")  # over the latest rate_window samples
SIGNALS = (*DRIFT_SIGNALS, *RATE_SIGNALS)


@dataclass
class SignalState:
    """A signal's latest verdict: its test result (drift signals) or value (all), the samples behind
    it, how many consecutive windows it has been over its threshold, and when it was evaluated."""

    result: TestResult | None = None
    value: float | None = None
    samples: int = 0
    windows_over: int = 0
    tested_at: float = 0.0
