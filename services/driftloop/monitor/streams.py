"""Per (model, adapter alias) stream: reference set, test windows, rates and the trigger policy.

A stream first collects ``reference_size`` predictions as its reference. Then every
``window_size`` predictions form a window that is tested against the reference (input embeddings
by MMD; prompt length, response length and mean token logprob by KS; finish reason and
empty/refusal answers by chi-squared) while error, negative-feedback and latency rates are kept
over the latest ``rate_window`` samples. The trigger policy turns those into at most one
RetrainTrigger per episode (sustained drift over k windows, or a rate over its threshold with a
minimum sample size; hysteresis to end an episode; a cooldown between triggers).
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from driftloop.monitor.backends import DriftBackend, TestResult
from driftloop.monitor.settings import MonitorSettings

FINISH = {"stop": 0, "length": 1, "abort": 2, "error": 3}
REFUSAL = re.compile(r"^\s*(i('| a)m sorry|i cannot|i can't|i don't know|sorry,|unable to)", re.IGNORECASE)
DRIFT_SIGNALS = ("input_embedding", "prompt_length", "response_length", "mean_logprob", "finish_reason",
                 "empty_or_refusal")
RATE_SIGNALS = ("negative_feedback_rate", "error_rate", "latency_p95")
FEATURES = ("prompt_length", "response_length", "mean_logprob", "finish_reason", "empty_or_refusal")


def rate_threshold(s: MonitorSettings, name: str) -> float:
    return {"negative_feedback_rate": s.negative_feedback_threshold, "error_rate": s.error_rate_threshold,
            "latency_p95": s.latency_p95_threshold_s}[name]


def answer_kind(completion: str) -> int:
    """0: an answer, 1: empty, 2: a refusal."""
    if not completion.strip():
        return 1
    return 2 if REFUSAL.match(completion) else 0


@dataclass
class Sample:
    prompt: str
    features: tuple[float, float, float, int, int]  # FEATURES order
    error: bool
    latency: float
    time: float
    embedding: np.ndarray | None = None


@dataclass
class SignalState:
    result: TestResult | None = None
    value: float | None = None
    samples: int = 0
    windows_over: int = 0
    tested_at: float = 0.0


@dataclass
class TriggerDecision:
    trigger_id: str
    dedupe_key: str
    model: str
    alias: str
    version: str
    firing: list[str]
    signals: dict[str, SignalState]
    window_start: float
    window_end: float
    predictions: int
    feedback: int
    negatives: int
    errors: int


@dataclass
class Episode:
    start: float
    dedupe_key: str
    triggered: bool = False
    predictions: int = 0
    feedback: int = 0
    negatives: int = 0
    errors: int = 0
    quiet_windows: int = 0


@dataclass
class Stream:
    model: str
    alias: str
    s: MonitorSettings
    version: str = ""
    ref_features: list[tuple] = field(default_factory=list)
    ref_embeddings: list[np.ndarray] = field(default_factory=list)
    window: list[Sample] = field(default_factory=list)
    errors: deque = field(default_factory=deque)
    latencies: deque = field(default_factory=deque)
    negatives: deque = field(default_factory=deque)
    signals: dict[str, SignalState] = field(default_factory=dict)
    episode: Episode | None = None
    last_trigger_at: float = 0.0
    windows_tested: int = 0
    last_event_time: float = 0.0
    reference_dirty: bool = True
    durations: dict[str, float] = field(default_factory=dict)
    _prepared: object | None = None

    def __post_init__(self) -> None:
        n = self.s.rate_window
        self.errors, self.latencies, self.negatives = deque(maxlen=n), deque(maxlen=n), deque(maxlen=n)
        for name in (*DRIFT_SIGNALS, *RATE_SIGNALS):
            self.signals.setdefault(name, SignalState())

    @property
    def key(self) -> str:
        return f"{self.model}\x1f{self.alias}"

    @property
    def has_reference(self) -> bool:
        return len(self.ref_features) >= self.s.reference_size

    def wants_embedding(self) -> bool:
        """Whether the next prediction's prompt is to be embedded (all of the reference; at most
        ``embed_max_per_window`` per window, the rest sampled out)."""
        if not self.has_reference:
            return True
        embedded = sum(1 for x in self.window if x.embedding is not None)
        return embedded < self.s.embed_max_per_window

    def reset(self, version: str) -> None:
        """A new version was promoted: rebuild the reference from fresh traffic."""
        self.version = version
        self.ref_features.clear()
        self.ref_embeddings.clear()
        self.window.clear()
        self.errors.clear()
        self.latencies.clear()
        self.negatives.clear()
        for st in self.signals.values():
            st.windows_over = 0
            st.result = None
        self.episode = None
        self._prepared = None
        self.reference_dirty = True

    # -- input -----------------------------------------------------------------------------------
    def add_feedback(self, negative: bool) -> None:
        self.negatives.append(negative)
        if self.episode is not None:
            self.episode.feedback += 1
            self.episode.negatives += int(negative)

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
                    self.episode.negatives += 1 if negative else -1
                    self.episode.negatives = max(0, self.episode.negatives)
                return

    def add_prediction(self, sample: Sample, backend: DriftBackend) -> TriggerDecision | None:
        self.errors.append(sample.error)
        self.latencies.append(sample.latency)
        self.last_event_time = max(self.last_event_time, sample.time)
        if self.episode is not None:
            self.episode.predictions += 1
            self.episode.errors += int(sample.error)
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
        return self._close_window(window, backend)

    # -- tests -------------------------------------------------------------------------------------
    def _close_window(self, window: list[Sample], backend: DriftBackend) -> TriggerDecision | None:
        now = time.time()
        ref = np.array(self.ref_features, dtype=np.float64)
        cur = np.array([x.features for x in window], dtype=np.float64)
        emb = [x.embedding for x in window if x.embedding is not None]
        if emb and len(self.ref_embeddings) >= 20:
            t0 = time.perf_counter()
            if self._prepared is None:
                self._prepared = backend.prepare_mmd(np.stack(self.ref_embeddings))
            self._set("input_embedding", backend.mmd(self._prepared, np.stack(emb)), len(emb), now, t0)
        for i, name in enumerate(FEATURES[:3]):
            r, c = ref[:, i], cur[:, i]
            r, c = r[~np.isnan(r)], c[~np.isnan(c)]
            if len(r) >= 10 and len(c) >= 10:
                t0 = time.perf_counter()
                self._set(name, backend.ks(r, c, corrections=3), len(c), now, t0)
        for i, name in ((3, "finish_reason"), (4, "empty_or_refusal")):
            t0 = time.perf_counter()
            result = backend.chi2(ref[:, i].astype(int), cur[:, i].astype(int), corrections=2)
            self._set(name, result, len(cur), now, t0)
        self._rates(now)
        self.windows_tested += 1
        return self._policy(window[0].time, now)

    def _set(self, name: str, result: TestResult, n: int, now: float, started: float) -> None:
        self.durations[name] = time.perf_counter() - started
        st = self.signals[name]
        st.result, st.samples, st.tested_at = result, n, now
        st.value = result.statistic
        st.windows_over = st.windows_over + 1 if result.detected else 0

    def _rates(self, now: float) -> None:
        s = self.s
        for name, values, threshold in (
            ("negative_feedback_rate", self.negatives, s.negative_feedback_threshold),
            ("error_rate", self.errors, s.error_rate_threshold),
        ):
            st = self.signals[name]
            st.samples, st.tested_at = len(values), now
            st.value = float(np.mean(values)) if values else 0.0
            self._rate_over(st, threshold)
        st = self.signals["latency_p95"]
        st.samples, st.tested_at = len(self.latencies), now
        st.value = float(np.quantile(list(self.latencies), 0.95)) if self.latencies else 0.0
        self._rate_over(st, s.latency_p95_threshold_s)

    def _rate_over(self, st: SignalState, threshold: float) -> None:
        if st.samples < self.s.min_samples:
            st.windows_over = 0
        elif st.value is not None and st.value > threshold:
            st.windows_over += 1
        elif st.value is not None and st.value < threshold * self.s.rate_hysteresis:
            st.windows_over = 0
        # between threshold × hysteresis and threshold: keep the current state

    def rate_threshold(self, name: str) -> float:
        return rate_threshold(self.s, name)

    def firing(self) -> list[str]:
        out = []
        for name in self.s.trigger_signals:
            need = self.s.sustained_windows if name in DRIFT_SIGNALS else 1
            if self.signals[name].windows_over >= need:
                out.append(name)
        return out

    def _policy(self, window_start: float, now: float) -> TriggerDecision | None:
        firing = self.firing()
        if not firing:
            if self.episode is not None:
                self.episode.quiet_windows += 1
                if self.episode.quiet_windows >= self.s.clear_windows:
                    self.episode = None
            return None
        if self.episode is None:
            start = window_start
            key = f"{self.model}/{self.alias}/{self.version or 'base'}/{int(start * 1000)}"
            # The evidence a trigger carries: the window that fired and the rate windows behind it.
            self.episode = Episode(start=start, dedupe_key=key, predictions=self.s.window_size,
                                   feedback=len(self.negatives), negatives=int(sum(self.negatives)),
                                   errors=int(sum(self.errors)))
        self.episode.quiet_windows = 0
        if self.episode.triggered or now - self.last_trigger_at < self.s.cooldown_s:
            return None
        self.episode.triggered = True
        self.last_trigger_at = now
        ep = self.episode
        return TriggerDecision(
            trigger_id=uuid.uuid4().hex, dedupe_key=ep.dedupe_key, model=self.model, alias=self.alias,
            version=self.version, firing=firing, signals=dict(self.signals), window_start=ep.start,
            window_end=self.last_event_time, predictions=ep.predictions, feedback=ep.feedback,
            negatives=ep.negatives, errors=ep.errors,
        )

    # -- persistence ---------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, bytes, bytes | None]:
        """(scalars as JSON-able dict, window arrays, reference arrays or None when unchanged)."""
        meta = {
            "model": self.model, "alias": self.alias, "version": self.version,
            "window": [[x.prompt, list(x.features), x.error, x.latency, x.time] for x in self.window],
            "window_embedded": [x.embedding is not None for x in self.window],
            "errors": list(self.errors), "latencies": list(self.latencies), "negatives": list(self.negatives),
            "signals": {k: {"windows_over": v.windows_over, "value": v.value, "samples": v.samples,
                            "tested_at": v.tested_at,
                            "result": None if v.result is None else list(v.result.__dict__.values())}
                        for k, v in self.signals.items()},
            "episode": None if self.episode is None else self.episode.__dict__,
            "last_trigger_at": self.last_trigger_at, "windows_tested": self.windows_tested,
            "last_event_time": self.last_event_time,
        }
        window_emb = [x.embedding for x in self.window if x.embedding is not None]
        window = _npz(window_emb=np.stack(window_emb) if window_emb else np.zeros((0, 0), np.float32))
        reference = None
        if self.reference_dirty:
            reference = _npz(
                ref_features=np.array(self.ref_features, dtype=np.float64).reshape(-1, len(FEATURES)),
                ref_emb=np.stack(self.ref_embeddings) if self.ref_embeddings else np.zeros((0, 0), np.float32),
            )
            self.reference_dirty = False
        return meta, window, reference

    @classmethod
    def from_state(cls, s: MonitorSettings, meta: dict, window: bytes, reference: bytes) -> Stream:
        st = cls(meta["model"], meta["alias"], s, version=meta["version"])
        ref = np.load(io.BytesIO(reference))
        st.ref_features = [tuple(row) for row in ref["ref_features"].tolist()]
        st.ref_embeddings = list(ref["ref_emb"]) if ref["ref_emb"].size else []
        win = np.load(io.BytesIO(window))["window_emb"]
        window_emb = list(win) if win.size else []
        for (prompt, features, error, latency, t), embedded in zip(meta["window"], meta["window_embedded"],
                                                                   strict=True):
            st.window.append(Sample(prompt, tuple(features), error, latency, t,
                                    window_emb.pop(0) if embedded else None))
        st.errors.extend(meta["errors"])
        st.latencies.extend(meta["latencies"])
        st.negatives.extend(meta["negatives"])
        for name, v in meta["signals"].items():
            sig = st.signals.setdefault(name, SignalState())
            sig.windows_over, sig.value, sig.samples, sig.tested_at = (v["windows_over"], v["value"], v["samples"],
                                                                       v["tested_at"])
            sig.result = None if v["result"] is None else TestResult(*v["result"])
        st.episode = None if meta["episode"] is None else Episode(**meta["episode"])
        st.last_trigger_at = meta["last_trigger_at"]
        st.windows_tested = meta["windows_tested"]
        st.last_event_time = meta["last_event_time"]
        st.reference_dirty = False
        return st


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
