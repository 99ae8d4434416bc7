"""Settings of the monitor. Environment prefix ``DRIFTLOOP_MONITOR_``; Kafka's own settings come from
``DRIFTLOOP_KAFKA_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftloop.core.settings import KafkaSettings
from driftloop.monitor.signals import SIGNALS


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_MONITOR_", extra="forbid")

    group_id: str = Field("driftloop-monitor", description="Kafka consumer group.")
    host: str = Field("127.0.0.1", description="Metrics listen address.")
    metrics_port: int = Field(9401, ge=0, description="Prometheus /metrics port (0 picks a free one).")
    state_dir: Path = Field(Path(".run/monitor"), description="Reference sets and detector state.")
    replica: str = Field("monitor-0", description="Name in logs and the DLQ.")

    # -- drift tests ------------------------------------------------------------------------------
    backend: Literal["alibi", "scipy"] = Field(
        "scipy", description="Drift test implementation: 'scipy' (numpy/scipy, BSD; what the chart and compose "
        "run) or 'alibi' (alibi-detect, BSL 1.1: production use needs a licence). Same tests; scipy's MMD is "
        "calibrated (1.0 % of unchanged windows drift at p < 0.01, alibi 0.13's 2.0 %) and ~17x faster."
    )
    reference_size: int = Field(500, ge=20, description="Events per alias that form the reference set.")
    window_size: int = Field(100, ge=10, description="Events per test window.")
    p_value: float = Field(0.01, gt=0, lt=1, description="Significance of each drift test (before correction).")
    mmd_permutations: int = Field(100, ge=10, description="Permutations of the MMD test.")
    embed_max_per_window: int = Field(
        100, ge=10, description="Prompts per window embedded for the MMD test: each window prompt is embedded "
        "with probability embed_max_per_window / window_size, chosen by a hash of its request id (a uniform "
        "sample of the window, the same on replay), and never more than this. The window's other tests use "
        "every prompt. At most window_size."
    )
    embed_batch_size: int = Field(64, ge=1, description="Prompts per embedding batch.")
    embed_cache_size: int = Field(20000, ge=0, le=1_000_000, description="Prompts whose embeddings are kept "
                                  "(least recently used out first; 384 floats each, 20,000: 31 MB): a prompt "
                                  "asked again is not embedded again. 0: none.")
    mmd_min_reference: int = Field(20, ge=2, description="Reference embeddings the MMD test needs to run.")
    mmd_min_window: int = Field(10, ge=2, description="Window embeddings the MMD test needs to run (a window "
                                "with fewer, e.g. under deep load shedding, gets no MMD verdict).")
    ks_min_samples: int = Field(10, ge=2, description="Values (not NaN) a KS test needs in the reference and "
                                "in the window to run.")

    # -- rates --------------------------------------------------------------------------------------
    rate_window: int = Field(200, ge=10, description="Latest predictions/feedback the rates are computed over.")
    min_samples: int = Field(50, ge=1, description="No rate verdict below this many samples.")
    negative_feedback_threshold: float = Field(0.3, gt=0, le=1, description="Negative-feedback share that alarms.")
    error_rate_threshold: float = Field(0.05, gt=0, le=1, description="Error share that alarms.")
    latency_p95_threshold_s: float = Field(5.0, gt=0, description="p95 latency that alarms.")

    # -- trigger policy -----------------------------------------------------------------------------
    trigger_signals: tuple[str, ...] = Field(
        ("input_embedding", "negative_feedback_rate", "error_rate"), description="Signals that can raise a trigger."
    )
    sustained_windows: int = Field(
        3, ge=1, description="Consecutive drifted windows before a drift signal counts. Each window's MMD "
        "test drifts by chance at about P_VALUE; 2 in a row gave false triggers in 1-3 of 300 simulated runs "
        "of 15 unchanged windows (make bench-false-alarms), 3 in none with scipy, for one window more of delay."
    )
    clear_windows: int = Field(3, ge=1, description="Quiet windows before an episode ends (hysteresis).")
    rate_hysteresis: float = Field(0.8, gt=0, le=1, description="A rate must fall below threshold × this to clear.")
    cooldown_s: float = Field(600.0, ge=0, description="Minimum time between two triggers of one alias.")
    follow_up_margin: float = Field(
        0.03, ge=0, le=1, description="After a promotion that answered an episode, the negative-feedback rate may "
        "stay this much above the stream's own pre-change rate; above it for FOLLOW_UP_WINDOWS windows, a follow-up "
        "round is triggered (the rate over RATE_WINDOW 200 has a standard error of ~0.025 at 15 %).")
    follow_up_windows: int = Field(3, ge=1, description="Windows in a row above the pre-change rate + margin "
                                   "before a follow-up round.")
    round_pending_s: float = Field(
        3600.0, gt=0, description="A follow-up round raised is pending until the next promotion of the alias or "
        "this long (a round the gate rejected for good); no further round meanwhile. Longer than a round's "
        "training, gate and canary (the demo measured one round at 11 minutes on 2 cores).")
    max_rounds: int = Field(3, ge=1, le=10, description="Trigger rounds per episode, the first included; 1: no "
                            "follow-up rounds.")

    # -- slices -------------------------------------------------------------------------------------
    slice_tags: tuple[str, ...] = Field(
        ("slice",), description="Request tags whose values are slices (a user group, a region, a tier; the tag "
        "'slice' is the one the retrainer's gate scores by too): each value gets "
        "its own stream — negative feedback, error rate and input drift, its own episodes and rounds — so one "
        "group failing while the average looks fine raises a signal (core/slices.py). JSON list.")
    slice_language: bool = Field(True, description="A slice per guessed language of what the user asks "
                                 "(lang=en, lang=es, ..., a bounded set; core/slices.py).")
    max_slices: int = Field(16, ge=0, le=64, description="Slice streams per alias at most (the first values "
                            "seen); predictions of further slices are analysed for the alias only and counted "
                            "(driftloop_monitor_slice_overflow_total). 0: no slices.")

    # -- joining ------------------------------------------------------------------------------------
    join_ttl_s: float = Field(3600.0, gt=0, description="How long a prediction waits for its feedback.")
    join_max_entries: int = Field(200_000, ge=100, description="Bound on remembered predictions.")
    join_expiry_interval_s: float = Field(60.0, gt=0, description="How often expired join entries are dropped.")

    # -- records ------------------------------------------------------------------------------------
    max_streams: int = Field(64, ge=1, description="Streams (model, alias) analysed at most; predictions for "
                             "further ones are counted (result stream_limit), not analysed.")
    max_event_age_s: float = Field(30 * 86400, gt=0, description="Events older than this are invalid (DLQ).")
    max_clock_skew_s: float = Field(300.0, ge=0, description="Events this far in the future are invalid (DLQ).")

    # -- load ---------------------------------------------------------------------------------------
    lag_interval_s: float = Field(5.0, gt=0, description="How often consumer lag is measured.")
    shed_lag: int = Field(5000, ge=1, description="Consumer lag (records behind, all consumed topics) from which "
                          "window prompts are embedded only at shed_sample_rate.")
    shed_sample_rate: float = Field(0.25, gt=0, le=1, description="Share of window prompts embedded while the "
                                    "lag is at least shed_lag, when lower than embed_max_per_window / "
                                    "window_size (reference prompts are always embedded).")

    # -- Kafka --------------------------------------------------------------------------------------
    poll_timeout_ms: int = Field(500, ge=10, description="Kafka poll timeout.")
    max_poll_records: int = Field(1000, ge=1, description="Records per poll: one batch, one checkpoint.")
    publish_timeout_s: float = Field(30.0, gt=0, description="How long a RetrainTrigger or a dead letter waits "
                                     "for Kafka's acknowledgement before the batch fails.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @model_validator(mode="after")
    def _check(self) -> MonitorSettings:
        unknown = set(self.trigger_signals) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown trigger signals {sorted(unknown)}; known: {SIGNALS}")
        if self.embed_max_per_window > self.window_size:
            self.embed_max_per_window = self.window_size
        if self.mmd_min_window > self.embed_max_per_window:
            raise ValueError(f"mmd_min_window ({self.mmd_min_window}) > embed_max_per_window "
                             f"({self.embed_max_per_window}): the MMD test would never run")
        return self

    def rate_threshold(self, name: str) -> float:
        """The threshold of a rate signal (``signals.RATE_SIGNALS``)."""
        return {"negative_feedback_rate": self.negative_feedback_threshold, "error_rate": self.error_rate_threshold,
                "latency_p95": self.latency_p95_threshold_s}[name]
