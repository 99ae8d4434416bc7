"""The trigger policy of a stream: at most one RetrainTrigger per episode.

A drift signal fires after ``sustained_windows`` consecutive drifted windows, a rate signal while
it is over its threshold (with ``min_samples``); only ``trigger_signals`` count. The first firing
window opens an episode; ``clear_windows`` quiet windows close it (hysteresis); ``cooldown_s``
separates two triggers of one stream.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import DRIFT_SIGNALS, SignalState

if TYPE_CHECKING:
    from driftloop.monitor.streams import Stream


@dataclass
class Episode:
    """An open drift/quality episode and the evidence counted since it opened."""

    start: float
    dedupe_key: str
    triggered: bool = False
    predictions: int = 0
    feedback: int = 0
    negatives: int = 0
    errors: int = 0
    quiet_windows: int = 0

    def count_prediction(self, error: bool) -> None:
        self.predictions += 1
        self.errors += int(error)

    def count_feedback(self, negative: bool) -> None:
        self.feedback += 1
        self.negatives += int(negative)

    def revise_feedback(self, negative: bool) -> None:
        self.negatives = max(0, self.negatives + (1 if negative else -1))


@dataclass
class TriggerDecision:
    """A trigger that is due, with its evidence as of the window that fired (``signals``: copies)."""

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


def firing(s: MonitorSettings, signals: dict[str, SignalState]) -> list[str]:
    out = []
    for name in s.trigger_signals:
        need = s.sustained_windows if name in DRIFT_SIGNALS else 1
        if signals[name].windows_over >= need:
            out.append(name)
    return out


def _open_episode(st: Stream, window_start: float) -> Episode:
    key = f"{st.model}/{st.alias}/{st.version or 'base'}/{int(window_start * 1000)}"
    # The evidence a trigger carries: the window that fired and the rate windows behind it.
    return Episode(start=window_start, dedupe_key=key, predictions=st.s.window_size, feedback=len(st.negatives),
                   negatives=int(sum(st.negatives)), errors=int(sum(st.errors)))


def decide(st: Stream, window_start: float, now: float) -> TriggerDecision | None:
    """After a window was tested: update the stream's episode; a decision when a trigger is due."""
    names = firing(st.s, st.signals)
    if not names:
        if st.episode is not None:
            st.episode.quiet_windows += 1
            if st.episode.quiet_windows >= st.s.clear_windows:
                st.episode = None
        return None
    if st.episode is None:
        st.episode = _open_episode(st, window_start)
    ep = st.episode
    ep.quiet_windows = 0
    if ep.triggered or now - st.last_trigger_at < st.s.cooldown_s:
        return None
    ep.triggered = True
    st.last_trigger_at = now
    return TriggerDecision(
        trigger_id=uuid.uuid4().hex, dedupe_key=ep.dedupe_key, model=st.model, alias=st.alias, version=st.version,
        firing=names, signals={k: replace(v) for k, v in st.signals.items()}, window_start=ep.start,
        window_end=st.last_event_time,
        predictions=ep.predictions, feedback=ep.feedback, negatives=ep.negatives, errors=ep.errors,
    )
