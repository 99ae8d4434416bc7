"""The monitor's gauges, set from its state: each stream's signals (test statistics and thresholds,
rates, persistence, freshness), episode and reference size; consumer lag and the embedding sample
rate. Only gauges: counters and histograms are counted where the events happen."""

from __future__ import annotations

from driftloop.core.metrics import MonitorMetrics
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import DRIFT_SIGNALS, RATE_SIGNALS, SignalState
from driftloop.monitor.streams import Stream


class Exporter:
    def __init__(self, metrics: MonitorMetrics) -> None:
        self.m = metrics

    def info(self, s: MonitorSettings) -> None:
        self.m.info.info({"backend": s.backend, "window_size": str(s.window_size),
                          "reference_size": str(s.reference_size)})

    def stream(self, st: Stream) -> None:
        """Every gauge of a stream (after a window closed, a reset, or at start)."""
        if st.slice:
            self._slice(st)
            return
        labels = (st.model, st.alias)
        for name in DRIFT_SIGNALS:
            sig = st.signals[name]
            if sig.result is not None:
                self._drift(labels, name, sig)
        for name in RATE_SIGNALS:
            sig = st.signals[name]
            if sig.value is not None:
                self.m.rate.labels(*labels, name).set(sig.value)
                self.m.rate_threshold.labels(*labels, name).set(st.s.rate_threshold(name))
                self._evaluated(labels, name, sig)
        self.m.episode_active.labels(*labels).set(int(st.episode is not None or st.follow_up is not None))
        self.reference(st)

    def reference(self, st: Stream) -> None:
        if not st.slice:
            self.m.reference_samples.labels(st.model, st.alias).set(len(st.ref_features))

    def _slice(self, st: Stream) -> None:
        labels = (st.model, st.alias, st.slice)
        for name in DRIFT_SIGNALS:
            sig = st.signals[name]
            if sig.result is not None:
                self.m.slice_detected.labels(*labels, name).set(int(sig.result.detected))
                self.m.slice_windows_over.labels(*labels, name).set(sig.windows_over)
        for name in RATE_SIGNALS:
            sig = st.signals[name]
            if sig.value is not None:
                self.m.slice_rate.labels(*labels, name).set(sig.value)
                self.m.slice_windows_over.labels(*labels, name).set(sig.windows_over)
        self.m.slice_episode_active.labels(*labels).set(int(st.episode is not None or st.follow_up is not None))

    def _drift(self, labels: tuple[str, str], name: str, sig: SignalState) -> None:
        r = sig.result
        assert r is not None
        self.m.statistic.labels(*labels, name).set(r.statistic)
        self.m.p_value.labels(*labels, name).set(r.p_value)
        self.m.p_value_threshold.labels(*labels, name).set(r.p_threshold)
        if r.statistic_threshold is not None:
            self.m.statistic_threshold.labels(*labels, name).set(r.statistic_threshold)
        self.m.detected.labels(*labels, name).set(int(r.detected))
        self._evaluated(labels, name, sig)

    def _evaluated(self, labels: tuple[str, str], name: str, sig: SignalState) -> None:
        self.m.windows_over.labels(*labels, name).set(sig.windows_over)
        self.m.window_samples.labels(*labels, name).set(sig.samples)
        self.m.last_test.labels(*labels, name).set(sig.tested_at)

    def lag(self, per_topic: dict[str, int]) -> None:
        for topic, lag in per_topic.items():
            self.m.lag.labels(topic).set(lag)

    def sample_rate(self, rate: float) -> None:
        self.m.embed_sample_rate.set(rate)
