"""Per (model, adapter alias) stream — and per slice of one (``lang=es``, ``tier=free``: see
core/slices.py) — reference set, test windows and rates: statistics only.

A stream first collects ``reference_size`` predictions as its reference. Then every
``window_size`` predictions form a window that is tested against the reference
(:mod:`driftloop.monitor.detectors`) while error, negative-feedback and latency rates are kept over
the latest ``rate_window`` samples. Each closed window goes through the trigger policy
(:mod:`driftloop.monitor.policy`); :meth:`Stream.add_prediction` returns what the window gave.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from driftloop.monitor import policy
from driftloop.monitor.backends import DriftBackend
from driftloop.monitor.detectors import PreparedReference, Tested, run_window_tests
from driftloop.monitor.features import Features, Sample
from driftloop.monitor.policy import Episode, FollowUp, TriggerDecision
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import SIGNALS, SignalState


def stream_key(model: str, alias: str, slice_label: str = "") -> str:
    """The one key of a (model, alias[, slice]) stream: in memory, in the state file's streams and joins."""
    return f"{model}\x1f{alias}" + (f"\x1f{slice_label}" if slice_label else "")


@dataclass(frozen=True)
class WindowClosed:
    """What a closed window gave: each test's run time (by signal) and a trigger, if one is due."""

    durations: dict[str, float]
    trigger: TriggerDecision | None


@dataclass
class Stream:
    model: str
    alias: str
    s: MonitorSettings
    version: str = ""
    slice: str = ""  # "" for the alias's whole traffic, else one slice of it (``lang=es``)
    ref_features: list[Features] = field(default_factory=list)
    ref_embeddings: list[np.ndarray] = field(default_factory=list)
    window: list[Sample] = field(default_factory=list)
    errors: deque = field(default_factory=deque)
    latencies: deque = field(default_factory=deque)
    negatives: deque = field(default_factory=deque)
    signals: dict[str, SignalState] = field(default_factory=dict)
    episode: Episode | None = None
    baseline_negative: float | None = None  # negative-feedback rate at the last window with no episode open
    follow_up: FollowUp | None = None  # a promoted episode, watched until back to normal (policy.py)
    follow_up_events: list[str] = field(default_factory=list)  # raised/recovered/exhausted, for the metrics
    last_trigger_at: float = 0.0
    windows_tested: int = 0
    last_event_time: float = 0.0
    reference_dirty: bool = True  # the reference changed since it was last saved
    _prepared: PreparedReference | None = None  # what the tests need of the reference, built once per reference

    def __post_init__(self) -> None:
        n = self.s.rate_window
        self.errors, self.latencies, self.negatives = deque(maxlen=n), deque(maxlen=n), deque(maxlen=n)
        for name in SIGNALS:
            self.signals.setdefault(name, SignalState())

    @property
    def key(self) -> str:
        return stream_key(self.model, self.alias, self.slice)

    @property
    def has_reference(self) -> bool:
        return len(self.ref_features) >= self.s.reference_size

    def wants_embedding(self, draws: Sequence[float], share: float) -> list[bool]:
        """Which of this stream's next ``len(draws)`` predictions to embed, in order: every reference
        prompt; in each window those whose embedding draw (``shedding.embedding_draw``) is below
        ``share``, at most ``embed_max_per_window``."""
        reference_left = max(0, self.s.reference_size - len(self.ref_features))
        filled, embedded = len(self.window), sum(1 for x in self.window if x.embedding is not None)
        out = []
        for draw in draws:
            if reference_left:
                reference_left -= 1
                out.append(True)
                continue
            want = draw < share and embedded < self.s.embed_max_per_window
            out.append(want)
            filled, embedded = filled + 1, embedded + int(want)
            if filled == self.s.window_size:  # the window closes: the next one starts empty
                filled = embedded = 0
        return out

    def reset(self, version: str) -> None:
        """A new version was promoted: rebuild the reference from fresh traffic."""
        self.version = version
        for values in (self.ref_features, self.ref_embeddings, self.window, self.errors, self.latencies,
                       self.negatives):
            values.clear()
        for st in self.signals.values():
            st.windows_over = 0
            st.result = None
        # The episode that led here goes on as a follow-up (a round's promotion keeps the one it had). Only
        # the alias's whole-traffic stream follows an episode up: rounds are the alias's, one at a time.
        follow_up = None if self.slice else policy.follow_up_of(self.episode) or self.follow_up
        if follow_up is not None:
            follow_up.windows_over = follow_up.quiet_windows = 0
            follow_up.pending_since = None
        self.follow_up = follow_up
        self.episode = None
        self._prepared = None
        self.reference_dirty = True

    # -- input -----------------------------------------------------------------------------------
    def add_feedback(self, negative: bool) -> None:
        self.negatives.append(negative)
        if self.episode is not None:
            self.episode.count_feedback(negative)

    def revise_feedback(self, was_negative: bool, negative: bool) -> None:
        """A request's verdict changed (one verdict per request: the latest counts). The most recent
        entry with the old verdict is changed in the rate window; if it has left the window, there
        is nothing to change."""
        if was_negative == negative:
            return
        for i in range(len(self.negatives) - 1, -1, -1):
            if self.negatives[i] == was_negative:
                self.negatives[i] = negative
                if self.episode is not None:
                    self.episode.revise_feedback(negative)
                return

    def add_prediction(self, sample: Sample, backend: DriftBackend, now: float) -> WindowClosed | None:
        """Add a prediction; when it closes a window, the window's tests and policy verdict."""
        self.errors.append(sample.error)
        self.latencies.append(sample.latency)
        self.last_event_time = max(self.last_event_time, sample.time)
        if self.episode is not None:
            self.episode.count_prediction(sample.error)
        if not self.has_reference:
            self.ref_features.append(sample.features)
            if sample.embedding is not None:
                self.ref_embeddings.append(sample.embedding)
            self.reference_dirty = True
            return None
        self.window.append(sample)
        if len(self.window) < self.s.window_size:
            return None
        window, self.window = self.window, []
        return self._close_window(window, backend, now)

    # -- tests -------------------------------------------------------------------------------------
    def _close_window(self, window: list[Sample], backend: DriftBackend, now: float) -> WindowClosed:
        if self._prepared is None:
            self._prepared = PreparedReference(backend, self.ref_features, self.ref_embeddings)
        # A slice's stream tests its input drift only: the output features are tested for the whole alias
        # (each slice stream more would multiply the monitor's per-window cost by its slice count).
        tested = run_window_tests(self.s, self._prepared, window, features=not self.slice)
        for name, t in tested.items():
            self._set(name, t, now)
        self._rates(now)
        self.windows_tested += 1
        trigger = policy.decide(self, window[0].time, now)
        return WindowClosed({name: t.seconds for name, t in tested.items()}, trigger)

    def _set(self, name: str, t: Tested, now: float) -> None:
        st = self.signals[name]
        st.result, st.samples, st.tested_at = t.result, t.samples, now
        st.value = t.result.statistic
        st.windows_over = st.windows_over + 1 if t.result.detected else 0

    def _rates(self, now: float) -> None:
        latencies = list(self.latencies)
        for name, values, value in (
            ("negative_feedback_rate", self.negatives, float(np.mean(self.negatives)) if self.negatives else 0.0),
            ("error_rate", self.errors, float(np.mean(self.errors)) if self.errors else 0.0),
            ("latency_p95", latencies, float(np.quantile(latencies, 0.95)) if latencies else 0.0),
        ):
            st = self.signals[name]
            st.samples, st.tested_at, st.value = len(values), now, value
            self._rate_over(st, self.s.rate_threshold(name))

    def _rate_over(self, st: SignalState, threshold: float) -> None:
        if st.samples < self.s.min_samples:
            st.windows_over = 0
        elif st.value is not None and st.value > threshold:
            st.windows_over += 1
        elif st.value is not None and st.value < threshold * self.s.rate_hysteresis:
            st.windows_over = 0
        # between threshold × hysteresis and threshold: keep the current state
